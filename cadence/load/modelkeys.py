"""What a model's rendering depends on: the keys the load cache reuses rendered models by.

Input: ``ProjectFiles`` and the sources declared -> output: the key every model's rendering
shares (cadence.yml, vars and ``--vars``, the warehouse, macros, docs, sources, seeds; in a
dbt project its dbt_project.yml configs, dispatch, paths and profile target), and per model the
key of its own file and YAML entry on top. A model whose key is unchanged is taken from the
cache as it was rendered (``parser``). Pure: reads nothing but its arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cadence.load.loader import ProjectFiles, SourceFile
    from cadence.load.properties import Source, YamlModel


def shared_key(files: ProjectFiles, sources: list[Source]) -> str:
    """What every model's rendering may read besides its own file and YAML entry."""
    from cadence.load.digests import digest

    config = files.config
    parts = [files.config_digest, repr(sorted(config.vars.items(), key=str)), repr(sources)]
    parts += [f.digest for f in files.macros] + [f.digest for f in files.docs]
    parts += [s.name for s in files.seeds]
    parts += [repr(sorted(config.cli_vars.items(), key=str)), repr(config.warehouse)]
    if files.dbt is not None:  # dbt_project.yml's configs, vars and dispatch, the profile's target
        read = files.dbt
        parts += [repr(config.dbt), repr(read.project.dispatch)]
        parts += [repr(plain_yaml(p.trees)) for p in (read.project, *read.packages)]
        parts += [repr(p.paths) for p in (read.project, *read.packages)]
    return digest("|".join(parts).encode())


def model_key(shared: str, source_file: SourceFile, yaml_entry: YamlModel | None) -> str:
    from cadence.load.digests import digest

    entry = repr(plain_yaml(yaml_entry.entry)) + yaml_entry.file if yaml_entry else ""
    return digest(f"{shared}|{source_file.path}|{source_file.digest}|{entry}".encode())


def plain_yaml(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted(((str(k), plain_yaml(v)) for k, v in value.items()), key=lambda kv: kv[0])
    if isinstance(value, list):
        return [plain_yaml(v) for v in value]
    return value
