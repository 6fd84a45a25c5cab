"""The model library: load meshes into the canonical frame and keep a catalog of them.

- :class:`Library` — the SQLite catalog of a workspace (add files, folders, manifests, procedural chairs;
  list, get, load canonical meshes).
- :func:`load_mesh` / :class:`MeshRecord` — one mesh file in the canonical frame (+Y up, front +Z, centred,
  farthest vertex at distance 1; DESIGN.md "Conventions").
"""

from cadsearch.library.catalog import AddReport, Library, ModelInfo
from cadsearch.library.mesh import MeshRecord, axis_rotation, canonicalise, load_mesh

__all__ = ["AddReport", "Library", "MeshRecord", "ModelInfo", "axis_rotation", "canonicalise", "load_mesh"]
