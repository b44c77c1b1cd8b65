"""benchmarks/throughput.py parts on a few frames: they run and count what they step."""

from pathlib import Path

import yaml

from benchmarks import throughput

ROOT = Path(__file__).resolve().parents[1]


def test_raw_and_collection_parts_count_their_frames():
    config = yaml.safe_load((ROOT / "configs" / "hopper.yaml").read_text())
    config["data"] |= {"frames_per_batch": 256, "num_envs": 2}
    raw = throughput.raw_gym(config, 300)
    collected = throughput.collection(config, 512)
    assert raw["frames"] == 300 and collected["frames"] == 512
    assert raw["wall_s"] > 0 and collected["wall_s"] > 0


def test_full_loop_part_trains_the_requested_frames():
    part = throughput.in_child("c", ROOT / "configs" / "inverted_pendulum.yaml", 2048)
    assert part["frames"] == 2048 and part["frames_per_s"] > 0 and part["peak_rss_mb"] > 0
