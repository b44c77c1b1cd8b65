"""The `imitation` library's GAIL (SB3 PPO generator), timed: benchmarks/throughput.py part (d).

Runs in benchmarks/peer/.venv (see setup.sh), on Hopper-v4 (gymnasium 0.29 has no v5),
from our shipped Hopper demonstrations (v4 and v5 share observation and action spaces),
with the hyperparameters of imitation's documented GAIL example (``--settings example``)
or of its tuned seals-Hopper benchmark (``--settings tuned``, from imitation's
``benchmarking/example_gail_seals_hopper_best_hp_eval.json``). Prints one JSON line.

    benchmarks/peer/.venv/bin/python benchmarks/peer/imitation_gail.py --frames 200000 --n-envs 8
    benchmarks/peer/.venv/bin/python benchmarks/peer/imitation_gail.py --frames 200000 --settings tuned
    benchmarks/peer/.venv/bin/python benchmarks/peer/imitation_gail.py --frames 2000000 --settings tuned --eval-every 49152

With ``--eval-every N`` the policy plays 5 deterministic episodes after the first round past
every N frames, scored as ours are, (R − R_random) / (R_expert − R_random) with the
references of ``demos/hopper.npz``; the JSON then holds the curve and the frames and wall
seconds (evaluation included) until the first score ≥ 0.9.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from imitation.algorithms.adversarial.gail import GAIL
from imitation.data import types
from imitation.data.wrappers import RolloutInfoWrapper
from imitation.policies.base import NormalizeFeaturesExtractor
from imitation.rewards.reward_nets import BasicRewardNet
from imitation.util.networks import RunningNorm
from imitation.util.util import make_vec_env
from stable_baselines3 import PPO
from stable_baselines3.ppo import MlpPolicy

DEMOS = Path(__file__).resolve().parents[2] / "demos" / "hopper.npz"


def trajectories(path: Path, n: int) -> list[types.Trajectory]:
    """Our demonstration file's first ``n`` episodes as imitation trajectories."""
    data = np.load(path)
    out, start = [], 0
    for episode, length in enumerate(data["episode_lengths"][:n]):
        rows = slice(start, start + int(length))
        # Format 2 stores each episode's last next-observation alone; older files store all.
        last = (data["final_observations"][episode : episode + 1] if "final_observations" in data.files
                else data["next_observations"][rows][-1:])
        obs = np.concatenate([data["observations"][rows], last])
        out.append(types.Trajectory(obs=obs, acts=data["actions"][rows], infos=None,
                                    terminal=bool(data["terminated"][rows][-1])))
        start += int(length)
    return out


class ScoreReached(Exception):
    """Ends training early: imitation's round loop has no other way out of a callback."""


def normalized_score(learner: PPO, seed: int, episodes: int = 5) -> float:
    """Mean normalized return of deterministic episodes on Hopper-v4, seeds seed, seed+1, ..."""
    metadata = json.loads(str(np.load(DEMOS)["metadata"]))
    env, returns = gym.make("Hopper-v4"), []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action, _ = learner.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    expert, random = metadata["expert_return_mean"], metadata["random_return_mean"]
    return (float(np.mean(returns)) - random) / (expert - random)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--trajectories", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", choices=["example", "tuned"], default="example")
    parser.add_argument("--eval-every", type=int, default=0, help="frames between evaluations (0: none)")
    parser.add_argument("--stop-at", type=float, default=None, help="stop at the first evaluation scoring this")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    venv = make_vec_env("Hopper-v4", rng=rng, n_envs=args.n_envs,
                        post_wrappers=[lambda env, _: RolloutInfoWrapper(env)])
    if args.settings == "example":
        learner = PPO(env=venv, policy=MlpPolicy, batch_size=64, ent_coef=0.0, learning_rate=0.0004,
                      gamma=0.95, n_epochs=5, seed=args.seed)
        gail = dict(demo_batch_size=1024, gen_replay_buffer_capacity=512, n_disc_updates_per_round=8)
    else:  # 4,096 frames per round, as the tuned benchmark
        learner = PPO(env=venv, policy=MlpPolicy, n_steps=4096 // args.n_envs, batch_size=512, n_epochs=20,
                      learning_rate=4.4e-5, clip_range=0.1, gae_lambda=0.98, gamma=0.995, vf_coef=0.20,
                      ent_coef=0.00126, max_grad_norm=0.9, seed=args.seed,
                      policy_kwargs=dict(net_arch=[64, 64], activation_fn=torch.nn.ReLU,
                                         features_extractor_class=NormalizeFeaturesExtractor))
        gail = dict(demo_batch_size=128, gen_replay_buffer_capacity=4096, n_disc_updates_per_round=8)
    reward_net = BasicRewardNet(venv.observation_space, venv.action_space, normalize_input_layer=RunningNorm)
    trainer = GAIL(demonstrations=trajectories(DEMOS, args.trajectories), venv=venv, gen_algo=learner,
                   reward_net=reward_net, **gail,
                   allow_variable_horizon=True)  # Hopper ends episodes early, as in our runs
    curve: list[dict[str, float]] = []
    start = time.perf_counter()

    def evaluate(_round: int) -> None:
        if args.eval_every and learner.num_timesteps // args.eval_every > len(curve):
            curve.append({"frames": learner.num_timesteps, "wall_s": time.perf_counter() - start,
                          "eval/normalized_score": normalized_score(learner, args.seed + 10_000 + len(curve))})
            if args.stop_at is not None and curve[-1]["eval/normalized_score"] >= args.stop_at:
                raise ScoreReached

    try:
        trainer.train(args.frames, callback=evaluate)
    except ScoreReached:
        pass
    wall = time.perf_counter() - start
    frames = learner.num_timesteps
    first = next((point for point in curve if point["eval/normalized_score"] >= 0.9), None)
    print(json.dumps({"frames": frames, "wall_s": wall, "frames_per_s": frames / wall, "n_envs": args.n_envs,
                      "settings": args.settings, "seed": args.seed, "curve": curve, "time_to_0.9": first,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
