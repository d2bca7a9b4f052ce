"""A small binary glTF 2.0 (GLB) writer: one node and mesh per element.

Written here (NumPy + json) rather than through trimesh so an import does not
pay trimesh's and scipy's import time in every worker process.

Axes: x east, y north, z up (metres; x and y relative to an origin given by
the caller, z the absolute height). This is what deck.gl's ScenegraphLayer
places with ``getOrientation: [0, 0, 0]`` (the viewer does). A consumer that
follows glTF's y-up convention (three.js, Blender) rotates the scene -90
degrees about x; :func:`to_gltf_axes` gives y-up coordinates if wanted.
"""

from __future__ import annotations

import json
import struct

import numpy as np

__all__ = ["write_glb", "read_glb", "to_gltf_axes"]

_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_FLOAT = 5126
_UINT32 = 5125


def to_gltf_axes(xyz: np.ndarray) -> np.ndarray:
    """(x east, y north, z up) -> glTF (x east, y up, z south)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return np.column_stack([xyz[:, 0], xyz[:, 2], -xyz[:, 1]])


def _pad(b: bytes, fill: bytes) -> bytes:
    return b + fill * ((4 - len(b) % 4) % 4)


def write_glb(meshes: list[tuple[str, np.ndarray, np.ndarray]], *, generator: str = "RongTwin bim_import",
              extras: dict | None = None) -> bytes:
    """GLB bytes for ``[(name, vertices (n, 3) glTF axes, faces (m, 3)), ...]``.

    Examples
    --------
    >>> import numpy as np
    >>> glb = write_glb([("tri", np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float), np.array([[0, 1, 2]]))])
    >>> glb[:4], len(glb) % 4
    (b'glTF', 0)
    """
    buf = bytearray()
    views, accessors, gl_meshes, nodes = [], [], [], []
    for name, v, f in meshes:
        v = np.ascontiguousarray(v, dtype=np.float32)
        f = np.ascontiguousarray(f, dtype=np.uint32).ravel()
        if not len(v) or not len(f):
            continue
        off = len(buf)
        buf += v.tobytes()
        views.append({"buffer": 0, "byteOffset": off, "byteLength": v.nbytes, "target": _ARRAY_BUFFER})
        accessors.append({"bufferView": len(views) - 1, "componentType": _FLOAT, "count": int(len(v)), "type": "VEC3",
                          "min": v.min(axis=0).astype(float).tolist(), "max": v.max(axis=0).astype(float).tolist()})
        off = len(buf)
        buf += f.tobytes()
        views.append({"buffer": 0, "byteOffset": off, "byteLength": f.nbytes, "target": _ELEMENT_ARRAY_BUFFER})
        accessors.append({"bufferView": len(views) - 1, "componentType": _UINT32, "count": int(len(f)),
                          "type": "SCALAR"})
        gl_meshes.append({"name": name, "primitives": [{"attributes": {"POSITION": len(accessors) - 2},
                                                        "indices": len(accessors) - 1, "mode": 4}]})
        nodes.append({"name": name, "mesh": len(gl_meshes) - 1})
    doc = {"asset": {"version": "2.0", "generator": generator}, "scene": 0,
           "scenes": [{"nodes": list(range(len(nodes)))}], "nodes": nodes, "meshes": gl_meshes,
           "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": len(buf)}]}
    if extras:
        doc["asset"]["extras"] = extras
    js = _pad(json.dumps(doc, separators=(",", ":")).encode("utf-8"), b" ")
    bin_ = _pad(bytes(buf), b"\x00")
    total = 12 + 8 + len(js) + 8 + len(bin_)
    return b"".join([struct.pack("<III", 0x46546C67, 2, total), struct.pack("<II", len(js), 0x4E4F534A), js,
                     struct.pack("<II", len(bin_), 0x004E4942), bin_])


def read_glb(data: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Meshes of a GLB written by :func:`write_glb`: node name -> (vertices (n, 3), faces (m, 3)).

    Examples
    --------
    >>> import numpy as np
    >>> glb = write_glb([("tri", np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float), np.array([[0, 1, 2]]))])
    >>> v, f = read_glb(glb)["tri"]
    >>> v.shape, f.tolist()
    ((3, 3), [[0, 1, 2]])
    """
    magic, version, total = struct.unpack_from("<III", data, 0)
    if magic != 0x46546C67 or version != 2:
        raise ValueError("not a binary glTF 2.0 file")
    jlen, jtype = struct.unpack_from("<II", data, 12)
    doc = json.loads(data[20:20 + jlen])
    off = 20 + jlen
    blen, _btype = struct.unpack_from("<II", data, off)
    binary = memoryview(data)[off + 8:off + 8 + blen]
    dtypes = {_FLOAT: np.float32, _UINT32: np.uint32, 5123: np.uint16, 5121: np.uint8}
    widths = {"VEC3": 3, "SCALAR": 1}

    def accessor(i):
        a = doc["accessors"][i]
        bv = doc["bufferViews"][a["bufferView"]]
        dt = np.dtype(dtypes[a["componentType"]])
        n = a["count"] * widths[a["type"]]
        start = bv.get("byteOffset", 0) + a.get("byteOffset", 0)
        return np.frombuffer(binary, dtype=dt, count=n, offset=start)

    out = {}
    for node in doc.get("nodes", []):
        if "mesh" not in node:
            continue
        prim = doc["meshes"][node["mesh"]]["primitives"][0]
        v = accessor(prim["attributes"]["POSITION"]).astype(np.float64).reshape(-1, 3)
        f = accessor(prim["indices"]).astype(np.int64).reshape(-1, 3)
        out[node.get("name", str(len(out)))] = (v, f)
    return out
