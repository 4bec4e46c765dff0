"""`layerkit show`: the merged spec, each value annotated with the file:line it came from."""

from __future__ import annotations

import io
import json
from typing import Any

from layerkit.spec.merge import Resolved


def _dotted(key: tuple[str | int, ...]) -> str:
    return ".".join(str(k) for k in key)


def as_json(r: Resolved) -> str:
    doc = {
        "spec": r.spec.model_dump(mode="json", exclude_none=True),
        "provenance": {
            _dotted(k): str(v) for k, v in sorted(r.provenance.items(), key=lambda kv: _dotted(kv[0])) if k
        },
        "layers": [layer.source for layer in r.layers],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def as_yaml(r: Resolved) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def build(value: Any, key: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            m = CommentedMap()
            for k, v in value.items():
                m[k] = build(v, (*key, k))
                origin = r.provenance.get((*key, k))
                if origin and not isinstance(v, dict | list):
                    m.yaml_add_eol_comment(f"from {origin}", k)
            return m
        if isinstance(value, list):
            s = CommentedSeq()
            for i, v in enumerate(value):
                s.append(build(v, (*key, i)))
                origin = r.provenance.get((*key, i))
                if origin and not isinstance(v, dict | list):
                    s.yaml_add_eol_comment(f"from {origin}", i)
            return s
        return value

    data = build(r.spec.model_dump(mode="json", exclude_none=True), ())
    y = YAML()
    y.default_flow_style = False
    buf = io.StringIO()
    buf.write("# merged from: " + ", ".join(layer.source for layer in r.layers) + "\n")
    y.dump(data, buf)
    return buf.getvalue()
