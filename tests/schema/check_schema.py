#!/usr/bin/env python3
"""Check schema/wg-fleet.schema.json against the examples.

usage: check_schema.py REPO_ROOT

- the schema must itself be a valid Draft 2020-12 schema;
- every examples/*.yaml must load and validate;
- every examples/invalid/*.yaml must be listed in examples/invalid/README.md;
  rows marked "yes" in its schema column must be rejected (a file that fails
  to load counts as rejected), rows marked "no" must be accepted, since the
  one mistake they carry is for the C++ validator alone. Files with a
  duplicate key are skipped: the schema only sees the parsed data.

YAML is loaded with the YAML 1.2 core schema, as yaml-language-server and
wg-fleet read it, not PyYAML's YAML 1.1 default: `on`/`yes` stay strings,
`1:2:3:4` is not a base-60 integer, and mapping keys are their source text
(JSON object keys are strings).

Prints one line per file, then "N passed, M failed"; exits 1 on any failure.
"""

import json
import pathlib
import re
import sys

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match


class DuplicateKeyError(yaml.MarkedYAMLError):
    pass


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader restricted to the YAML 1.2 core schema, rejecting duplicate keys."""

    yaml_implicit_resolvers = {}

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, found {node.id}", node.start_mark)
        mapping = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    "mapping keys must be scalars", key_node.start_mark)
            key = key_node.value
            if key in mapping:
                raise DuplicateKeyError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r}", key_node.start_mark)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_yaml12_int(self, node):
        text = self.construct_scalar(node)
        if text.startswith("0x"):
            return int(text[2:], 16)
        if text.startswith("0o"):
            return int(text[2:], 8)
        return int(text, 10)


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))
Yaml12Loader.add_constructor("tag:yaml.org,2002:int", Yaml12Loader.construct_yaml12_int)


def load_yaml(path):
    # As bytes: PyYAML then skips a byte order mark and reports bytes that are not UTF-8 (or a
    # NUL) as a load error, as an editor's YAML server would.
    with open(path, "rb") as f:
        return yaml.load(f, Loader=Yaml12Loader)


def one_line(text, limit=110):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(error):
    # A failed oneOf/anyOf says little; its best-matching branch says why.
    while error.validator in ("oneOf", "anyOf") and error.context:
        error = best_match(error.context)
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    message = error.message
    if error.validator == "pattern" and isinstance(error.schema, dict):
        hint = error.schema.get("patternErrorMessage")
        if hint:
            message = f"{error.instance!r}: {hint}"
    elif error.schema is False and error.parent is not None and isinstance(error.parent.instance, dict):
        # jsonschema drops the key from the path of a false property schema.
        keys = [k for k, v in error.parent.instance.items() if v is error.instance]
        if keys:
            where = "here"
            branches = error.parent.schema.get(error.parent.validator)
            if isinstance(branches, list) and error.schema_path and isinstance(error.schema_path[0], int):
                title = branches[error.schema_path[0]].get("title")
                where = f"in a {title}" if title else where
            message = f"key {keys[0]!r} is not allowed {where}"
    return one_line(f"{path}: {message}")


def readme_expectations(readme):
    """Map file name -> "yes" | "no" | "no-duplicate" from the README table."""
    rows = {}
    row = re.compile(r"^\|\s*`?(\d\d-[A-Za-z0-9_-]+\.yaml)`?\s*\|.*\|\s*([^|]*?)\s*\|\s*$")
    for line in readme.read_text(encoding="utf-8").splitlines():
        m = row.match(line)
        if not m:
            continue
        name, verdict = m.group(1), m.group(2).lower()
        if verdict.startswith("yes"):
            rows[name] = "yes"
        elif verdict.startswith("no"):
            rows[name] = "no-duplicate" if "duplicate key" in verdict else "no"
        else:
            rows[name] = "unknown:" + verdict
    return rows


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} REPO_ROOT", file=sys.stderr)
        return 2
    root = pathlib.Path(argv[1])
    schema_path = root / "schema" / "wg-fleet.schema.json"
    examples = root / "examples"
    invalid = examples / "invalid"
    passed = failed = 0

    def report(ok, rel, message):
        nonlocal passed, failed
        if ok is None:
            print(f"SKIP {rel}: {message}")
            return
        print(f"{'PASS' if ok else 'FAIL'} {rel}: {message}")
        if ok:
            passed += 1
        else:
            failed += 1

    def rel(path):
        return path.relative_to(root).as_posix()

    try:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
    except (OSError, ValueError, SchemaError) as e:
        report(False, rel(schema_path), one_line(f"not a valid Draft 2020-12 schema: {e}"))
        print(f"{passed} passed, {failed} failed")
        return 1
    report(True, rel(schema_path), "valid Draft 2020-12 schema")
    validator = Draft202012Validator(schema)

    valid_files = sorted(examples.glob("*.yaml"))
    if not valid_files:
        report(False, rel(examples), "no examples found")
    for path in valid_files:
        try:
            data = load_yaml(path)
        except yaml.YAMLError as e:
            report(False, rel(path), one_line(f"does not load: {e}"))
            continue
        errors = list(validator.iter_errors(data))
        if errors:
            report(False, rel(path), f"{len(errors)} schema error(s), first: "
                   + describe(best_match(errors)))
        else:
            report(True, rel(path), "valid")

    expected = readme_expectations(invalid / "README.md")
    invalid_files = sorted(invalid.glob("*.yaml"))
    for name in sorted(set(expected) - {p.name for p in invalid_files}):
        report(False, f"{rel(invalid)}/{name}", "listed in README.md but missing")
    for path in invalid_files:
        verdict = expected.get(path.name)
        if verdict is None:
            report(False, rel(path), "not listed in examples/invalid/README.md")
            continue
        if verdict.startswith("unknown:"):
            report(False, rel(path), f"README schema column {verdict[8:]!r} is neither yes nor no")
            continue
        try:
            data = load_yaml(path)
        except DuplicateKeyError as e:
            if verdict == "no-duplicate":
                report(None, rel(path), one_line(
                    f"{e.problem} at line {e.problem_mark.line + 1}: only the C++ loader sees duplicate keys"))
            else:
                report(False, rel(path), one_line(f"unexpected duplicate key: {e}"))
            continue
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e)
            report(verdict == "yes", rel(path),
                   one_line(f"rejected: fails to load{where}: {problem}") if verdict == "yes"
                   else one_line(f"fails to load, but README says only the validator catches it: {e}"))
            continue
        if verdict == "no-duplicate":
            report(False, rel(path), "README says it has a duplicate key, but none was found")
            continue
        errors = list(validator.iter_errors(data))
        if verdict == "yes":
            if errors:
                report(True, rel(path), "rejected: " + describe(best_match(errors)))
            else:
                report(False, rel(path), "accepted, but README says the schema rejects it")
        else:
            if errors:
                report(False, rel(path), "rejected, but README says only the validator catches it: "
                       + describe(best_match(errors)))
            else:
                report(True, rel(path), "accepted (only the C++ validator catches this one)")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
