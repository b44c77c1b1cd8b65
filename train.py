"""Train GAIL (or a PPO expert) with the Lightning CLI: `python train.py fit --config hopper.yaml`."""

from gail_lightning.cli import main

if __name__ == "__main__":
    main()
