"""The render job on a two-node Ray cluster (two virtual nodes on this machine, ``ray.cluster_utils.Cluster``):
the chunks are spread over both nodes and the result equals the local engine's."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadsearch.library import Library
from cadsearch.render.job import RenderConfig, read_view_table, render_views

ray = pytest.importorskip("ray", reason="the ray engine needs Ray (pip install cadsearch[scale])")
pytest.importorskip("ray.data", reason="the ray engine needs Ray Data (pip install cadsearch[scale])")


@pytest.fixture(scope="module")
def two_nodes():
    """A head node and a worker node of 1 CPU each: one render actor fits on each, and on no node twice."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "object_store_memory": 128 * 1024**2},
    )
    cluster.add_node(num_cpus=1, object_store_memory=128 * 1024**2)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_render_job_runs_on_both_nodes(two_nodes, tmp_path: Path) -> None:
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(nodes) == 2
    config = RenderConfig(views=150, size=32)  # 2 Ray chunks per model, 4 in all
    ws = tmp_path / "ws"
    Library.open(ws).generate_chairs(2)
    summary = render_views(ws, config, engine="ray", workers=2, progress=False)
    assert summary.rendered == 300
    assert set(summary.views_by_worker) == nodes, summary.views_by_worker  # work landed on both nodes
    assert all(n > 0 for n in summary.views_by_worker.values())
    local = tmp_path / "local"
    Library.open(local).generate_chairs(2)
    render_views(local, config, progress=False)
    assert read_view_table(ws) == read_view_table(local)
    assert all((ws / r.path).read_bytes() == (local / r.path).read_bytes() for r in read_view_table(ws))
