"""The GAIL-vs-BC table renderer and curve plots, on fake result files."""

import json
from pathlib import Path

import pytest

from benchmarks import paper_table

ROOT = Path(__file__).resolve().parents[1]

GRID = {
    "methods": {"GAIL-PPO": {"config": "configs/{task}.yaml"}, "BC": {"config": "configs/bc/{task}.yaml"}},
    "rows": [{"task": "hopper", "methods": ["GAIL-PPO", "BC"], "trajectories": [1, 4], "seeds": 2}],
}


REFS = {"hopper": {"expert": 3264.3, "random": 18.4}}


def fake_result(results: Path, method: str, n: int, seed: int, score: float,
                expert: float = REFS["hopper"]["expert"], **extra) -> None:
    """A seed's result whose evaluations were scored against ``expert`` (and REFS' random return)."""
    folder = paper_table.cell_dir(GRID, results, method, "hopper", n) / f"seed_{seed}"
    folder.mkdir(parents=True)
    random = REFS["hopper"]["random"]
    curve = [{"frames": f, "eval/return": random + s * (expert - random), "eval/normalized_score": s}
             for f, s in ((1000, score / 2), (2000, score))]
    (folder / "result.json").write_text(json.dumps({
        "seed": seed, "final_normalized_score": score, "final_return": curve[-1]["eval/return"], "curve": curve,
        **extra,
    }))


def test_grid_lists_every_cell():
    assert len(paper_table.cells(GRID)) == 2 * 2 * 2
    assert paper_table.cells(GRID, only="walker2d") == []
    assert paper_table.cells(GRID, method="BC") == [("BC", "hopper", n, s) for n in (1, 4) for s in (0, 1)]
    assert paper_table.cells(GRID, method="BC", trajectories=4) == [("BC", "hopper", 4, 0), ("BC", "hopper", 4, 1)]


def test_table_renders_mean_std_returns_missing_cells_and_references(tmp_path):
    fake_result(tmp_path, "GAIL-PPO", 4, 0, 0.9)
    fake_result(tmp_path, "GAIL-PPO", 4, 1, 1.1)
    fake_result(tmp_path, "BC", 4, 0, 0.3)
    table = paper_table.render(GRID, tmp_path, REFS)
    rows = {line.split("|")[2].strip(): line for line in table.splitlines() if line.startswith("| hopper |")}
    assert "1.00 ± 0.10 (3264; 2 seeds)" in rows["4"]
    assert "0.30 ± 0.00 (992; 1 seed)" in rows["4"]
    assert rows["1"].count("—") == 2
    assert "| hopper | 3264.3 | 18.4 |" in table


def test_a_cell_with_a_source_is_read_from_that_run_folder(tmp_path):
    grid = {**GRID, "sources": {"GAIL-PPO/hopper/4": "hopper_runs"}}
    assert paper_table.cell_dir(grid, tmp_path, "GAIL-PPO", "hopper", 4) == tmp_path / "hopper_runs"
    fake_result(tmp_path, "BC", 4, 0, 0.3)  # an unmapped cell keeps its own folder
    assert paper_table.load_results(grid, tmp_path, REFS).keys() == {("BC", "hopper", 4)}
    folder = tmp_path / "hopper_runs" / "seed_1"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"seed": 1, "final_normalized_score": 0.8}))
    assert paper_table.load_results(grid, tmp_path, {})[("GAIL-PPO", "hopper", 4)][0]["seed"] == 1


def test_curves_are_plotted_per_task_and_trajectory_count(tmp_path):
    fake_result(tmp_path, "BC", 1, 0, 0.2)
    written = paper_table.plot_curves(GRID, tmp_path, tmp_path, REFS)
    assert [p.name for p in written] == ["paper_hopper_traj1.png"]
    assert written[0].stat().st_size > 1000


def test_a_methods_band_spans_its_seeds_at_the_first_seeds_frames():
    runs = [{"curve": [{"frames": 0, "eval/normalized_score": 0.0}, {"frames": 100, "eval/normalized_score": 1.0}]},
            {"curve": [{"frames": 0, "eval/normalized_score": 0.2}, {"frames": 200, "eval/normalized_score": 0.6}]}]
    frames, mean, low, high = paper_table.score_band(runs)
    assert frames == [0, 100]
    assert low == [0.0, 0.4] and high == [0.2, 1.0]  # the second seed's 0.4 is interpolated at 100
    assert mean == [0.1, 0.7]


def test_bc_and_the_controls_are_lines_and_gail_methods_curves():
    grid = {"methods": {**GRID["methods"], "control": {"config": "configs/{task}.yaml"}}}
    assert [paper_table.flat_method(grid, m) for m in grid["methods"]] == [False, True, True]


def test_a_rows_overrides_apply_to_its_cells_only():
    grid = {
        "methods": {"GAIL-PPO": {"config": "configs/{task}.yaml", "overrides": ["--data.subsample=20"]}},
        "rows": [{"task": "hopper", "methods": ["GAIL-PPO"], "trajectories": [4], "seeds": 1,
                  "overrides": ["--data.total_frames=1000"]},
                 {"task": "walker2d", "methods": ["GAIL-PPO"], "trajectories": [4], "seeds": 1}],
    }
    assert paper_table.cell_overrides(grid, "GAIL-PPO", "hopper", 4) == [
        "--data.num_trajectories=4", "--data.subsample=20", "--data.total_frames=1000"]
    assert paper_table.cell_overrides(grid, "GAIL-PPO", "walker2d", 4) == [
        "--data.num_trajectories=4", "--data.subsample=20"]


def test_budget_table_lists_frames_and_minutes_per_method(tmp_path):
    for seed, wall in ((0, 600.0), (1, 1200.0)):
        fake_result(tmp_path, "GAIL-PPO", 4, seed, 1.0, frames=1_000_000, wall_s=wall)
    table = paper_table.render(GRID, tmp_path, {})
    assert "| hopper | GAIL-PPO | 1,000,000 | 15 |" in table
    assert "| hopper | BC |" not in table


def test_a_run_scored_against_an_expert_since_re_recorded_stops_the_table(tmp_path):
    fake_result(tmp_path, "GAIL-PPO", 4, 0, 0.9)
    fake_result(tmp_path, "GAIL-PPO", 4, 1, 1.1, expert=731.1)  # ran on the old demonstrations
    with pytest.raises(SystemExit, match=r"GAIL-PPO/hopper/traj_4/seed_1 was scored against other hopper"):
        paper_table.render(GRID, tmp_path, REFS)
    stale = paper_table.cell_dir(GRID, tmp_path, "GAIL-PPO", "hopper", 4) / "seed_1"
    stale.rename(tmp_path / "stale")  # as the message says: move it away, then the table renders
    assert "0.90 ± 0.00 (2940; 1 seed)" in paper_table.render(GRID, tmp_path, REFS)


def test_a_finished_cell_with_a_checkpoint_is_measured_once_against_the_demos(tmp_path, monkeypatch):
    fake_result(tmp_path, "GAIL-PPO", 4, 0, 1.0)
    finished = paper_table.cell_dir(GRID, tmp_path, "GAIL-PPO", "hopper", 4) / "seed_0"
    unfinished = finished.parent / "seed_1"
    for folder in (finished, unfinished):
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "last.ckpt").write_bytes((ROOT / "experts/hopper.ckpt").read_bytes())
    fake_result(tmp_path, "BC", 4, 0, 0.3)  # its checkpoints lost: nothing to measure
    lost = paper_table.cell_dir(GRID, tmp_path, "BC", "hopper", 4) / "seed_0"
    for folder in (finished, unfinished, lost):
        paper_table.measure_cell(folder, ROOT / "demos/hopper.npz", episodes=1)
    paper_table.measure_cell(finished, tmp_path / "no_demos.npz", episodes=1)
    assert not (unfinished / "state_mmd.json").exists()  # no result.json: still training
    assert not (lost / "state_mmd.json").exists()
    measured = json.loads((finished / "state_mmd.json").read_text())
    assert abs(measured["state_mmd"]) < 0.01  # the expert's own states
    assert measured["mean"]["steps"] == 1000

    monkeypatch.setattr(paper_table.reward_parts, "episode_parts", lambda *a: pytest.fail("measured twice"))
    paper_table.measure_cell(finished, ROOT / "demos/hopper.npz", episodes=1)


def test_measured_cells_get_a_distance_table_beside_the_scores(tmp_path):
    fake_result(tmp_path, "GAIL-PPO", 4, 0, 0.9)
    fake_result(tmp_path, "GAIL-PPO", 4, 1, 1.1)
    fake_result(tmp_path, "BC", 4, 0, 0.3)
    assert "squared MMD" not in paper_table.render(GRID, tmp_path, REFS)  # nothing measured: no table
    for seed, mmd in ((0, 0.1), (1, 0.3)):
        folder = paper_table.cell_dir(GRID, tmp_path, "GAIL-PPO", "hopper", 4) / f"seed_{seed}"
        (folder / "state_mmd.json").write_text(json.dumps({"state_mmd": mmd}))
    table = paper_table.render(GRID, tmp_path, REFS)
    assert "| task | trajectories | GAIL-PPO |" in table  # only the measured methods get columns
    assert "| hopper | 4 | 0.200 ± 0.100 (2) |" in table


def test_a_cell_that_cannot_be_measured_does_not_stop_the_grid(tmp_path, monkeypatch, capsys):
    def broken(run_dir, demos):
        raise SystemExit(f"{run_dir}: the simulation blew up")

    monkeypatch.setattr(paper_table, "run_seed", lambda *a: None)
    monkeypatch.setattr(paper_table, "measure_cell", broken)
    paper_table.run_cell(GRID, tmp_path, "GAIL-PPO", "hopper", 4, 0)
    assert "GAIL-PPO hopper 4 seed 0: not measured (" in capsys.readouterr().out
