"""Property test: whatever file it is given, the demo loader loads valid data or raises DemoError."""

import io
import json

import numpy as np
from conftest import random_demonstrations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gail_lightning.demonstrations import ARRAYS, DemoError, load_demonstrations

VALID = random_demonstrations(episodes=2)

arrays = st.sampled_from(
    [
        np.zeros(0),
        np.zeros((3, 2)),
        np.array([np.nan, 1.0]),
        np.array(["a", "b"]),
        np.array([1, 2, 3], dtype=np.int8),
        np.ones((2, 2, 2)),
        np.array(3.0),
        np.array([True, False]),
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(ARRAYS),
    dtype=st.sampled_from(["U1", "float16", "int64", "bool", "complex64", "object"]),
    value=st.sampled_from([0, 1, -1, np.inf]),
)
def test_right_length_wrong_content(tmp_path, name, dtype, value):
    original = getattr(VALID, name)
    contents = {k: getattr(VALID, k) for k in ARRAYS}
    contents[name] = np.full(original.shape, value).astype(dtype) if dtype != "object" else original.astype(object)
    contents["metadata"] = np.array(json.dumps(VALID.metadata))
    buffer = io.BytesIO()
    np.savez(buffer, **contents, allow_pickle=True)
    check(write(tmp_path, "content.npz", buffer.getvalue()))


def write(tmp_path, name, payload):
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def npz_bytes(contents):
    buffer = io.BytesIO()
    np.savez(buffer, **contents)
    return buffer.getvalue()


def check(path):
    try:
        demos = load_demonstrations(path)
    except DemoError:
        return
    assert len(demos.observations) == demos.episode_lengths.sum()
    expert = demos.first(demos.num_episodes).to_tensordict()
    assert expert["observation"].isfinite().all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=2048))
def test_random_bytes(tmp_path, payload):
    check(write(tmp_path, "bytes.npz", payload))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    replaced=st.dictionaries(st.sampled_from([*ARRAYS, "metadata"]), arrays, max_size=4),
    dropped=st.sets(st.sampled_from(ARRAYS), max_size=2),
    metadata=st.one_of(
        st.just(None),
        st.dictionaries(st.sampled_from(["env_id", "obs_dim", "action_dim", "seed"]),
                        st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=4),
    ),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=4000)),
)
def test_mutated_demo_files(tmp_path, replaced, dropped, metadata, cut):
    contents = {k: getattr(VALID, k) for k in ARRAYS if k not in dropped}
    meta = dict(VALID.metadata)
    if metadata is not None:
        meta.update(metadata)
    contents["metadata"] = np.array(json.dumps(meta))
    contents.update(replaced)
    payload = npz_bytes(contents)
    check(write(tmp_path, "mutated.npz", payload if cut is None else payload[:cut]))
