"""Writes `src/peyk/models.py`: a `TypedDict` (or a type alias) for every
schema of Peyk's OpenAPI document — every job type's payload and result,
every resource, the error body. Run it against a Peyk whose document
changed:

    python tools/generate_models.py http://localhost:8080/openapi.json > src/peyk/models.py

The test suite regenerates the module from the served document and fails
when it differs from the committed one (tests/test_models.py), so the
client's types and the API cannot drift apart. Deterministic: schemas in
name order, properties in document order; no dependency beyond the
standard library.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import urllib.request
from typing import Any

HEADER = '''"""Types of Peyk's API records, generated from its OpenAPI document by
`tools/generate_models.py` — do not edit by hand (the test suite fails when
this module and the served document differ).

Records are plain dicts at run time; these `TypedDict`s type them for your
editor and type checker: `job: peyk.models.JobView = client.jobs.get(id)`.
"""

# ruff: noqa: E501

from __future__ import annotations

from typing import Any, Literal, TypeAlias, TypedDict, Union
'''


def identifier(name: str) -> str:
    name = re.sub(r"\W", "_", name)
    return f"{name}_" if keyword.iskeyword(name) or name[:1].isdigit() else name


class Generator:
    def __init__(self, document: dict[str, Any]) -> None:
        self.schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
        self.out: list[str] = []
        #: Inline object schemas given names of their own (`Parent_field`).
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.done: set[str] = set()

    def type_of(self, schema: dict[str, Any] | bool, hint: str) -> str:
        """The Python type of a schema; `hint` names an inline object."""
        if not isinstance(schema, dict) or not schema:
            return "Any"
        if "$ref" in schema:
            return identifier(schema["$ref"].rsplit("/", 1)[-1])
        if "const" in schema:
            return f"Literal[{json.dumps(schema['const'], ensure_ascii=False)}]"
        if "enum" in schema:
            values = [v for v in schema["enum"] if v is not None]
            literal = f"Literal[{', '.join(json.dumps(v, ensure_ascii=False) for v in values)}]" if values else "None"
            return f"Union[{literal}, None]" if None in schema["enum"] and values else literal
        for combinator in ("oneOf", "anyOf"):
            if combinator in schema:
                return self.union([self.type_of(s, f"{hint}{i}") for i, s in enumerate(schema[combinator])])
        if "allOf" in schema:
            parts = schema["allOf"]
            return self.type_of(parts[0], hint) if len(parts) == 1 else self.named_object(hint, merge(parts, self.schemas))
        kind = schema.get("type")
        if isinstance(kind, list):
            return self.union([self.type_of({**schema, "type": k}, hint) for k in kind])
        if kind == "null":
            return "None"
        if kind == "string":
            return "str"
        if kind == "integer":
            return "int"
        if kind == "number":
            return "float"
        if kind == "boolean":
            return "bool"
        if kind == "array":
            return f"list[{self.type_of(schema.get('items', {}), hint + 'Item')}]"
        if kind == "object" or "properties" in schema:
            if schema.get("properties"):
                return self.named_object(hint, schema)
            extra = schema.get("additionalProperties")
            return f"dict[str, {self.type_of(extra, hint + 'Value') if isinstance(extra, dict) else 'Any'}]"
        return "Any"

    @staticmethod
    def union(types: list[str]) -> str:
        unique = list(dict.fromkeys(types))
        if "Any" in unique:
            return "Any"
        return unique[0] if len(unique) == 1 else f"Union[{', '.join(unique)}]"

    def named_object(self, name: str, schema: dict[str, Any]) -> str:
        name = identifier(name)
        if name not in self.done:
            self.done.add(name)
            self.pending.append((name, schema))
        return name

    def typed_dict(self, name: str, schema: dict[str, Any]) -> None:
        required = set(schema.get("required", []))
        properties: dict[str, Any] = schema.get("properties", {})
        fields = [(prop, self.type_of(sub, f"{name}_{prop}")) for prop, sub in properties.items()]
        description = (schema.get("description") or "").strip().splitlines()
        doc = f'    """{description[0]}"""\n' if description else ""
        valid = all(prop.isidentifier() and not keyword.iskeyword(prop) for prop, _ in fields)
        if not valid:
            # Keys such as `from` or `timestamp_granularities[]` need the
            # functional form (every key optional there).
            keys = ", ".join(f"{json.dumps(p)}: {t!r}" for p, t in fields)
            self.out.append(f'{name} = TypedDict("{name}", {{{keys}}}, total=False)\n')
            return
        must = [(p, t) for p, t in fields if p in required]
        may = [(p, t) for p, t in fields if p not in required]
        if must and may:
            self.out.append(f"class _{name}Required(TypedDict):\n" + "".join(f"    {p}: {t}\n" for p, t in must))
            self.out.append(f"class {name}(_{name}Required, total=False):\n{doc}" + "".join(f"    {p}: {t}\n" for p, t in may))
        elif must:
            self.out.append(f"class {name}(TypedDict):\n{doc}" + "".join(f"    {p}: {t}\n" for p, t in must))
        else:
            body = "".join(f"    {p}: {t}\n" for p, t in may) or "    pass\n"
            self.out.append(f"class {name}(TypedDict, total=False):\n{doc}{body}")

    def run(self) -> str:
        aliases: list[str] = []
        for name in sorted(self.schemas):
            schema = self.schemas[name]
            is_object = isinstance(schema, dict) and schema.get("properties") and not any(k in schema for k in ("oneOf", "anyOf"))
            if is_object:
                self.named_object(name, schema)
            else:
                python_type = self.type_of(schema, name)
                # An `allOf` became a class of this very name: no alias.
                if python_type != identifier(name):
                    # A string: the alias may name types defined further down.
                    aliases.append(f"{identifier(name)}: TypeAlias = {python_type!r}\n")
            while self.pending:
                self.typed_dict(*self.pending.pop(0))
        return HEADER + "\n\n" + "\n\n".join(self.out) + "\n\n" + "".join(aliases)


def merge(parts: list[dict[str, Any]], schemas: dict[str, Any]) -> dict[str, Any]:
    """An `allOf` as one object schema (properties and required of each part)."""
    merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for part in parts:
        if "$ref" in part:
            part = schemas.get(part["$ref"].rsplit("/", 1)[-1], {})
        merged["properties"].update(part.get("properties", {}))
        merged["required"] += part.get("required", [])
    return merged


def generate(document: dict[str, Any]) -> str:
    return Generator(document).run()


def main() -> None:
    source = sys.argv[1]
    if source.startswith("http"):
        with urllib.request.urlopen(source) as answer:
            document = json.load(answer)
    else:
        with open(source, encoding="utf-8") as file:
            document = json.load(file)
    sys.stdout.write(generate(document))


if __name__ == "__main__":
    main()
