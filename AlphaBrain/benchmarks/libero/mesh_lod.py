"""Fewer triangles for LIBERO's visual meshes: the cost of a frame on a CPU renderer.

With CPU EGL (llvmpipe) a LIBERO frame at 64-128 px costs ~25 ms per camera, nearly all of it
vertex work on the visual meshes (~240 k triangles in a LIBERO-Goal scene: a 42 k-triangle bowl,
a 33 k-triangle robot pedestal, 12-15 k per robot link). At the resolutions a small policy reads,
most of those triangles are smaller than a pixel. `simplify_visual_meshes` rewrites, in a compiled
model and before its render context uploads the meshes, each large visual mesh with fewer faces
by vertex clustering (vertices snapped to a grid are merged into one of them; faces that collapse
are dropped), keeping each kept corner's normal and texture coordinate.

Only meshes used by no colliding geom are touched (a visual geom has contype = conaffinity = 0):
contacts, inertia and therefore the physics are unchanged; only pixels are. Vertex positions are
not moved or rewritten: faces refer to a subset of the original vertices, so the face count
shrinks in place (mesh_facenum) inside the model's fixed arrays.

LIBERO rebuilds the model on every hard reset (every episode): the simplified faces of a mesh are
computed once per process and reused (`_CACHE`, keyed by the mesh's name, sizes and bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

# Grid resolutions tried, fine to coarse (cells along the mesh's longest side).
_RESOLUTIONS = (256, 181, 128, 90, 64, 45, 32, 23, 16, 11, 8)


@dataclass(frozen=True)
class _Simplified:
    faces: np.ndarray        # (k, 3) vertex indices, local to the mesh
    normals: np.ndarray      # (n, 3) smooth normals of the vertices the faces use
    face_normals: np.ndarray  # (k, 3) indices into `normals`
    face_texcoords: Optional[np.ndarray]  # (k, 3) texture coordinate indices, or None for an untextured mesh


_CACHE: dict[tuple, Optional[_Simplified]] = {}


def _visual_only_meshes(model) -> set[int]:
    import mujoco

    used_by_collider, used = set(), set()
    for g in range(model.ngeom):
        if model.geom_type[g] != mujoco.mjtGeom.mjGEOM_MESH:
            continue
        mesh = int(model.geom_dataid[g])
        used.add(mesh)
        if model.geom_contype[g] or model.geom_conaffinity[g]:
            used_by_collider.add(mesh)
    return used - used_by_collider


def cluster_faces(verts: np.ndarray, faces: np.ndarray, resolution: int, uv: np.ndarray | None = None) -> np.ndarray:
    """Faces of a vertex-clustered mesh: each vertex is replaced by the first vertex of its grid cell
    (`resolution` cells along the longest side of the bounding box); degenerate and repeated faces go.

    `uv` (one texture coordinate per vertex) joins the cell key: scanned objects have texture atlases
    of many small islands, and a vertex merged across an island border would take colours from
    elsewhere in the texture.
    """
    lo, hi = verts.min(0), verts.max(0)
    cell = max(float((hi - lo).max()), 1e-12) / resolution
    cols = [np.floor((verts - lo) / cell).astype(np.int64)]
    if uv is not None:
        cols.append(np.floor((uv - uv.min(0)) * resolution).astype(np.int64))
    key = np.zeros(len(verts), dtype=np.int64)
    for col in np.concatenate(cols, axis=1).T:  # mixed-radix key: one 1-D unique instead of a slow row-wise one
        key = key * (int(col.max()) + 1) + col
    _, first, label = np.unique(key, return_index=True, return_inverse=True)
    rep = first[label.reshape(-1)]                      # vertex -> representative vertex (an original index)
    f = rep[faces]
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = f[keep]
    # A face and its rotations are one face; opposite orientations are kept (two-sided thin parts).
    start = np.argmin(f, axis=1)[:, None]
    rolled = f[np.arange(len(f))[:, None], (start + np.arange(3)[None, :]) % 3]
    side = int(rolled.max()) + 1 if len(rolled) else 1
    _, uniq = np.unique((rolled[:, 0] * side + rolled[:, 1]) * side + rolled[:, 2], return_index=True)
    return f[np.sort(uniq)]



def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the vertices `faces` uses, sorted; their area-weighted smooth normals)."""
    v = verts.astype(np.float64)
    n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    acc = np.zeros_like(v)
    for k in range(3):
        np.add.at(acc, faces[:, k], n)
    used = np.unique(faces)
    out = acc[used]
    length = np.linalg.norm(out, axis=1, keepdims=True)
    return used, np.where(length > 0, out / np.maximum(length, 1e-20), np.array([0.0, 0.0, 1.0]))


def _plan(model, mesh: int, max_faces: int) -> Optional[_Simplified]:
    """The simplified form of one mesh, or None when clustering cannot remove faces or the mesh has
    too few normal slots for one normal per kept vertex."""
    nface, vnum = int(model.mesh_facenum[mesh]), int(model.mesh_vertnum[mesh])
    vadr, fadr, tadr = int(model.mesh_vertadr[mesh]), int(model.mesh_faceadr[mesh]), int(model.mesh_texcoordadr[mesh])
    verts = model.mesh_vert[vadr:vadr + vnum]
    faces = model.mesh_face[fadr:fadr + nface].astype(np.int64)
    tex_of_vertex = None
    if tadr >= 0:  # vertex -> the texture coordinate of one of its corners
        tex_of_vertex = np.zeros(vnum, dtype=np.int64)
        tex_of_vertex[faces.reshape(-1)] = model.mesh_facetexcoord[fadr:fadr + nface].reshape(-1)
    uv = None if tex_of_vertex is None else model.mesh_texcoord[tadr + tex_of_vertex]
    new = faces
    for resolution in _RESOLUTIONS:  # stop at the first within the bound
        candidate = cluster_faces(verts, faces, resolution, uv)
        if len(candidate) == 0:
            break  # too coarse: the mesh would vanish; keep the last one that had faces
        new = candidate
        if len(new) <= max_faces:
            break
    if len(new) >= nface:
        return None
    used, normals = _vertex_normals(verts, new)
    if len(used) > int(model.mesh_normalnum[mesh]):
        return None
    slot = np.zeros(vnum, dtype=np.int64)
    slot[used] = np.arange(len(used))
    return _Simplified(new, normals, slot[new], None if tex_of_vertex is None else tex_of_vertex[new])


def _write(model, mesh: int, s: _Simplified) -> None:
    fadr, nadr, k = int(model.mesh_faceadr[mesh]), int(model.mesh_normaladr[mesh]), len(s.faces)
    model.mesh_normal[nadr:nadr + len(s.normals)] = s.normals
    model.mesh_facenormal[fadr:fadr + k] = s.face_normals
    if s.face_texcoords is not None:
        model.mesh_facetexcoord[fadr:fadr + k] = s.face_texcoords
    model.mesh_face[fadr:fadr + k] = s.faces
    model.mesh_facenum[mesh] = k


def simplify_visual_meshes(model, max_faces: int) -> dict[str, int]:
    """Reduce, in place, every visual-only mesh of `model` (a mujoco.MjModel) with more than `max_faces`
    faces to at most `max_faces`, or, where texture islands stop the clustering earlier, to as few as it
    gets while the mesh keeps faces. Call it before the model's render context is made (the context
    uploads the meshes). Returns {"meshes": simplified, "faces_before": .., "faces_after": ..} (all meshes).

    Idempotent: a second call finds every mesh it can reduce already reduced and changes nothing.
    """
    import mujoco

    stats = {"meshes": 0, "faces_before": int(model.mesh_facenum.sum()), "faces_after": 0}
    for mesh in sorted(_visual_only_meshes(model)):
        nface = int(model.mesh_facenum[mesh])
        if nface <= max_faces:
            continue
        key = (mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_MESH, mesh), nface, int(model.mesh_vertnum[mesh]),
               float(model.mesh_vert[int(model.mesh_vertadr[mesh])].sum()), max_faces)
        if key not in _CACHE:
            _CACHE[key] = _plan(model, mesh, max_faces)
        if _CACHE[key] is not None:
            _write(model, mesh, _CACHE[key])
            stats["meshes"] += 1
    stats["faces_after"] = int(model.mesh_facenum.sum())
    return stats
