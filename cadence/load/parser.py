"""Parse models: render each model's Jinja once and merge its configuration.

Input: ``ProjectFiles`` -> output: ``ParsedProject`` (models, seeds, sources, data tests), each a
frozen value. Refs stay placeholder tokens until compile time; models that read per-run values
(``run_started_at``, ``tick``, ``invocation_id``, the clock of ``modules.datetime``,
``is_incremental()``) are flagged to be rendered again per run. A view or ephemeral whose text
depends on the run -- it reads such a value, through any macro or var, or it renders differently
at two fixed run times -- says why in ``run_dependent`` (the planner recreates such a view for
every build that reads it). Every problem in the project is reported at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from cadence.errors import CadenceError, ErrorCollector, did_you_mean
from cadence.load.cachefile import lazy_field
from cadence.load.config import ConfigLayer, ModelConfig, merge_config, unsupported_keys
from cadence.load.digests import env_digest
from cadence.load.forking import map_models
from cadence.load.generictests import GenericTests
from cadence.load.loader import ProjectFiles, SourceFile
from cadence.load.modelkeys import model_key, shared_key
from cadence.load.positions import first_line, ref_position, ref_positions
from cadence.load.projectconfig import ProjectConfig
from cadence.load.relations import Relation, qualified, relation_sql
from cadence.load.snapshots import SnapshotSpec, parse_snapshots
from cadence.load.unittests import UnitTest, parse_unit_tests

if TYPE_CHECKING:
    from cadence.load.dbt.nodes import DbtNodes
    from cadence.load.rendering import ModelEnvironment
from cadence.load.properties import (  # noqa: F401 - re-exported
    Seed,
    Source,
    YamlModel,
    parse_seeds,
    parse_sources,
    read_property_files,
)
from cadence.load.testspecs import (  # noqa: F401
    GENERIC_TESTS,
    DataTest,
    parse_singular_tests,
    parse_source_tests,
    parse_tests,
)
from cadence.load.yamlfile import line_of


@dataclass(frozen=True)
class Column:
    name: str
    description: str = ""
    data_type: str | None = None


@dataclass(frozen=True)
class Model:
    name: str
    path: str
    raw_sql: str
    rendered: str
    config: ModelConfig
    relation: str
    schema: str
    identifier: str
    refs: tuple[str, ...]
    ref_lines: tuple[tuple[str, int, int], ...]
    sources: tuple[tuple[str, str], ...]
    per_run: bool
    digest: str
    description: str
    columns: tuple[Column, ...]
    env_vars: tuple[tuple[str, str | None], ...]  # (name, env_digest when rendered)
    # a view or ephemeral whose SQL depends on the run: what it reads ("run_started_at"), or
    # perrun.RENDERS_DIFFERENTLY; "" otherwise (and for other materializations)
    run_dependent: str = ""
    package: str | None = None  # an installed dbt package's model (None: the project's own)
    inner: str = ""  # its path inside its model folder (a dbt project's model-paths)

    if not TYPE_CHECKING:
        __getattr__ = lazy_field  # fields a cached load decodes on first use (cachefile.py)

    @property
    def materialized(self) -> str:
        return self.config.materialized

    @property
    def folder(self) -> tuple[str, ...]:
        if self.inner:
            return PurePosixPath(self.inner).parent.parts
        return PurePosixPath(self.path).parent.parts[1:]


@dataclass(frozen=True)
class ParsedProject:
    config: ProjectConfig
    root: str
    models: tuple[Model, ...]
    seeds: tuple[Seed, ...]
    sources: tuple[Source, ...]
    tests: tuple[DataTest, ...]
    macro_files: tuple[tuple[str, str], ...]
    doc_blocks: dict[str, str]
    snapshots: tuple[SnapshotSpec, ...]  # how each snapshot (a model) records history
    unit_tests: tuple[UnitTest, ...]  # dbt's unit_tests:, run by `cadence test`
    warnings: tuple[CadenceError, ...] = ()
    disabled: tuple[tuple[str, str], ...] = ()  # (name, path) of models with enabled: false
    broken: tuple[str, ...] = ()  # models that failed to parse (errors reported)
    dispatch: tuple[tuple[str, tuple[str, ...]], ...] = ()  # dbt_project.yml's dispatch:
    analyses: tuple[tuple[str, str, str], ...] = ()  # (name, path, SQL with ref tokens)
    hooks: tuple[tuple[str, str, str], ...] = ()  # (on-run-start|on-run-end, file, SQL template)

    if not TYPE_CHECKING:
        __getattr__ = lazy_field  # fields a cached load decodes on first use (cachefile.py)

    @cached_property
    def by_name(self) -> dict[str, Model]:
        return {m.name: m for m in self.models}

    def model(self, name: str) -> Model | None:
        return self.by_name.get(name)

    @cached_property
    def view_hashes(self) -> dict[str, str]:
        """Identity of each model's definition (used for views): its rendered SQL, the relations
        it reads, and the SQL of every ephemeral inlined into it (a changed ephemeral changes
        the view)."""
        from cadence.load.digests import digest

        models = self.by_name
        out: dict[str, str] = {}
        for model in self.models:
            parts = [model.rendered, model.relation]
            stack, seen = list(model.refs), set()
            while stack:
                name = stack.pop()
                ref = models.get(name)
                if name in seen or ref is None:
                    continue
                seen.add(name)
                parts.append(ref.relation)
                if ref.materialized == "ephemeral":
                    parts.append(ref.rendered)
                    stack.extend(ref.refs)
            out[model.name] = digest("|".join(parts).encode())
        return out


def parse_project(
    files: ProjectFiles,
    env: ModelEnvironment | None = None,
    *,
    reuse: dict[str, Model] | None = None,
    keys_out: dict[str, str] | None = None,
    errors_out: list[CadenceError] | None = None,
) -> ParsedProject:
    """Parse every model, YAML, seed and test; raise ProjectErrors listing all problems.

    ``reuse`` maps input keys to models parsed before: a model whose key (its file, its YAML
    entry, cadence.yml, macros, sources and docs) is unchanged is taken as is, not rendered.
    ``keys_out`` receives each model's key.
    """
    errors = ErrorCollector()
    warnings: list[CadenceError] = []
    config = files.config
    if env is None:
        from cadence.load.environment import make_environment

        env = make_environment(files)
    for e in env.macro_errors:
        errors.add(e)

    others: dict[str, list[tuple[dict[str, Any], str]]] = {}  # snapshots:, unit_tests:
    yaml_models, yaml_sources, yaml_seeds = read_property_files(files, errors, others)
    generic = GenericTests(env)
    sources = parse_sources(yaml_sources, files, errors)
    env.set_sources((s.source_name, s.table, s.relation) for s in sources)
    nodes = None
    if files.dbt is not None:  # a dbt project: dbt places, configures and names its nodes
        from cadence.load.dbt.nodes import DbtNodes

        nodes = DbtNodes(files, env)
        for path in files.python_models:
            errors.add(
                CadenceError(
                    "Python models are not supported by cadence",
                    file=path,
                    line=1,
                    hint="write the model in SQL, or remove it (cadence never skips a model "
                    "silently)",
                )
            )

    disabled: list[tuple[str, str]] = []
    seeds = parse_seeds(files, yaml_seeds, errors, warnings, disabled, nodes)
    seen: dict[str, str] = {s.name: s.path for s in seeds}
    shared = shared_key(files, sources)
    models: list[Model] = []
    tests: list[DataTest] = []
    work: list[tuple[SourceFile, str, YamlModel | None, str, Model | None]] = []
    broken: list[str] = []  # failed to parse: refs to them are not reported again
    for source_file in files.models:
        name = PurePosixPath(source_file.path).stem
        if name in seen:
            errors.add(
                CadenceError(
                    f"duplicate model name '{name}'",
                    file=source_file.path,
                    line=1,
                    hint=f"also defined by {seen[name]}; model names (file stems) must be unique",
                )
            )
            continue
        seen[name] = source_file.path
        yaml_entry = yaml_models.pop(name, None)
        key = model_key(shared, source_file, yaml_entry)
        model = (reuse or {}).get(key)
        if model is not None and (
            model.name != name
            or model.path != source_file.path
            or any(env_digest(os.environ.get(k)) != v for k, v in model.env_vars)
        ):
            model = None
        work.append((source_file, name, yaml_entry, key, model))

    def parse_one(
        item: tuple[SourceFile, str, YamlModel | None, str, Model | None],
    ) -> tuple[Model | None, list[CadenceError]]:
        source_file, name, yaml_entry, _key, cached = item
        if cached is not None:
            return cached, []
        local = ErrorCollector()
        try:
            model = _parse_model(source_file, name, yaml_entry, config, env, local, nodes)
            return model, local.errors
        except CadenceError as exc:
            return None, [*local.errors, exc]

    for (source_file, name, yaml_entry, key, _cached), (model, found) in zip(
        work, map_models(parse_one, work), strict=True
    ):
        for e in found:
            errors.add(e)
        if model is None:
            if not found:
                disabled.append((name, source_file.path))
            else:
                broken.append(name)
            continue
        if keys_out is not None:
            keys_out[name] = key
        models.append(model)
        if yaml_entry is not None:
            tests.extend(
                parse_tests(
                    yaml_entry.entry,
                    name,
                    yaml_entry.file,
                    errors,
                    warnings,
                    generic,
                    defaults=nodes.test_defaults(model.path) if nodes is not None else None,
                )
            )
    for name, yaml_entry in yaml_models.items():
        guess = did_you_mean(name, seen)
        warnings.append(
            CadenceError(
                f"properties for '{name}', but no model or seed of that name",
                file=yaml_entry.file,
                line=line_of(yaml_entry.entry, "name"),
                severity="warning",
                hint=f"did you mean '{guess}'?" if guess else "remove the entry or add the model",
            )
        )
    snapshots = parse_snapshots(
        files, others.get("snapshots", []), config, env, errors, warnings, seen, Model
    )
    models.extend(snapshots.models)
    tests.extend(snapshots.tests)
    disabled.extend(snapshots.disabled)
    for m in models:
        for key in unsupported_keys(m.config):
            warnings.append(
                CadenceError(
                    f"config key '{key}' of model '{m.name}' has no effect: DuckDB has no {key}",
                    file=m.path,
                    severity="warning",
                    hint="dbt-duckdb skips them too; remove them to silence this",
                )
            )
    if nodes is not None:
        snapshot_paths = [
            (*PurePosixPath(path).parent.parts[1:], name)
            for name, path in [
                *((m.name, m.path) for m in snapshots.models),
                *snapshots.disabled,
            ]
        ]
        warnings.extend(
            nodes.warnings(
                [f.path for f in files.models], [s.path for s in files.seeds], snapshot_paths
            )
        )
    # a file that could not be read (a FIFO, a bad link) is reported once, where it was read:
    # what names it (a ref, a unit test) is not reported again as unknown
    broken.extend(
        PurePosixPath(p).stem
        for p in files.unreadable
        if PurePosixPath(p).suffix.lower() in (".sql", ".csv")
    )
    unit_tests = parse_unit_tests(
        others.get("unit_tests", []),
        files.fixtures,
        {m.name for m in models},
        {s.name for s in seeds},
        {(s.source_name, s.table) for s in sources},
        errors,
        {s.name for s in snapshots.specs},
        frozenset(broken),
    )
    relations = {(s.source_name, s.table): s.relation for s in sources}
    tests.extend(parse_source_tests(yaml_sources, relations, errors, generic))
    for entry, file in yaml_seeds:
        seed_path = next((s.path for s in seeds if s.name == entry.get("name")), None)
        defaults = nodes.test_defaults(seed_path, "seed") if nodes and seed_path else None
        tests.extend(
            parse_tests(entry, str(entry.get("name")), file, errors, warnings, generic, defaults)
        )
    tests.extend(parse_singular_tests(files.tests, env, errors))
    analyses = _parse_analyses(files.analyses, env, errors)
    errors.finish(errors_out)
    return ParsedProject(
        config=config,
        root=str(files.root),
        models=tuple(models),
        seeds=tuple(seeds),
        sources=tuple(sources),
        tests=tuple(tests),
        macro_files=tuple((f.path, f.text) for f in files.macros),
        doc_blocks=files.doc_blocks(),
        warnings=tuple(warnings),
        disabled=tuple(disabled),
        broken=tuple(broken),
        dispatch=files.dbt.project.dispatch if files.dbt is not None else (),
        analyses=analyses,
        hooks=_hooks(files),
        snapshots=snapshots.specs,
        unit_tests=tuple(unit_tests),
    )


def _hooks(files: ProjectFiles) -> tuple[tuple[str, str, str], ...]:
    """on-run-start/on-run-end of a dbt project (the root's, then each package's, as dbt)."""
    if files.dbt is None:
        return ()
    out = []
    for project in (files.dbt.project, *files.dbt.packages):
        for when, hooks in (
            ("on-run-start", project.on_run_start),
            ("on-run-end", project.on_run_end),
        ):
            out += [(when, project.file, sql) for sql, _line in hooks]
    return tuple(out)


def _folder_layers(config: ProjectConfig, path: str) -> list[ConfigLayer]:
    folder = PurePosixPath(path).parent.parts[1:]
    return [layer for parts, layer in config.folder_defaults if folder[: len(parts)] == parts]


def _parse_model(
    source_file: SourceFile,
    name: str,
    yaml_entry: YamlModel | None,
    config: ProjectConfig,
    env: ModelEnvironment,
    errors: ErrorCollector,
    nodes: DbtNodes | None = None,
) -> Model | None:
    from cadence.load.context import RenderState

    placed = nodes.place(source_file.path, "model") if nodes is not None else None
    if nodes is not None and placed is not None:
        layers = nodes.model_layers_for(placed)
    else:
        layers = _folder_layers(config, source_file.path)
    env_read: dict[str, str | None] = {}  # by descriptions; the SQL's own reads join them
    description = ""
    columns: tuple[Column, ...] = ()
    if yaml_entry is not None:
        entry = yaml_entry.entry
        cfg = entry.get("config") or {}
        if not isinstance(cfg, dict):
            errors.add(
                CadenceError(
                    "config must be a mapping",
                    file=yaml_entry.file,
                    line=line_of(entry, "config"),
                    hint="write config: {channels: [email]}",
                )
            )
            cfg = {}
        if entry.get("tags"):
            own = cfg.get("tags") or []
            own = [own] if isinstance(own, str) else own
            top = entry["tags"]
            top = [top] if isinstance(top, str) else top
            if isinstance(own, list) and isinstance(top, list):
                cfg = {**cfg, "tags": top + [t for t in own if t not in top]}
            else:
                errors.add(
                    CadenceError(
                        "tags must be a name or a list of names",
                        file=yaml_entry.file,
                        line=line_of(entry, "tags"),
                        hint="write tags: [daily, marketing]",
                    )
                )
        listed = entry.get("columns") or []
        if not isinstance(listed, list):
            errors.add(
                CadenceError(
                    "columns must be a list",
                    file=yaml_entry.file,
                    line=line_of(entry, "columns"),
                    hint="write columns:\n  - name: customer_id",
                )
            )
            listed = []
        key_lines = dict(getattr(cfg, "key_lines", {}) or {})
        layers.append(
            ConfigLayer(
                dict(cfg), yaml_entry.file, line_of(entry, "config") or line_of(entry), key_lines
            )
        )
        where = yaml_entry.file
        described = (entry, *(c for c in listed if isinstance(c, dict)))
        texts = [
            _describe(d.get("description"), env, where, line_of(d, "description"), errors, env_read)
            for d in described
        ]
        description = texts[0]
        columns = tuple(
            Column(str(c.get("name")), text, c.get("data_type"))
            for c, text in zip(described[1:], texts[1:])
        )
    # first pass: what config() says decides schema/alias and whether the model is incremental
    base = {k: v for layer in layers for k, v in layer.values.items()}
    package = placed.package if placed is not None else None
    node = None
    if nodes is not None and placed is not None:
        node = nodes.node(placed, "model", source_file.path, base)
        schema, identifier = nodes.names(
            base.get("schema"), base.get("alias"), base.get("database"), node, source_file.path
        )
    else:
        schema, identifier = config.warehouse.schema, name
    database = _database(config)
    guess = Relation(schema, identifier, qualified(database, schema, identifier), database)
    state = RenderState(file=source_file.path, this=guess, package=package)
    state.base_config, state.node = base, node
    rendered = env.render(source_file.text, state)
    config_line = first_line(source_file.text, r"config\s*\(")
    layers.append(ConfigLayer(dict(state.config), source_file.path, config_line))
    local_errors: list[CadenceError] = []
    merged = merge_config(layers, local_errors)
    for e in local_errors:
        errors.add(e)
    if not merged.enabled:
        return None
    if nodes is not None and placed is not None:
        final = {**base, **state.config}
        node = nodes.node(placed, "model", source_file.path, final)
        schema, identifier = nodes.names(
            merged.schema, merged.alias, final.get("database"), node, source_file.path
        )
    else:
        schema = merged.schema or config.warehouse.schema
        identifier = merged.alias or name
    relation = relation_sql(schema, identifier)
    if qualified(database, schema, identifier) != guess.rendered and state.this_used:
        # config() set schema/alias: `this` must name the model's real relation, as it does
        # when the model is rendered again per run
        again = RenderState(
            file=source_file.path,
            this=Relation(schema, identifier, qualified(database, schema, identifier), database),
            package=package,
        )
        again.base_config, again.node = base, node
        rendered = env.render(source_file.text, again)
    refs = list(state.refs)
    sources = list(state.sources)
    per_run = state.per_run
    run_dependent = ""
    if merged.materialized in ("view", "ephemeral"):
        this = Relation(schema, identifier, relation)
        from cadence.load.perrun import depends_on_run  # only when rendering: no Jinja on a hit

        run_dependent = depends_on_run(env, source_file, this, rendered, state.run_value)
        per_run = per_run or bool(run_dependent)
    if merged.materialized == "incremental":
        # refs inside {% if is_incremental() %} only show on the incremental branch
        inc = RenderState(file=source_file.path, incremental=True, package=package)
        inc.this = Relation(schema, identifier, qualified(database, schema, identifier), database)
        inc.base_config, inc.node = base, node
        env.render(source_file.text, inc)
        refs += [r for r in inc.refs if r not in refs]
        sources += [s for s in inc.sources if s not in sources]
    positions = ref_positions(source_file.text)
    ref_lines = tuple((r, *(positions.get(r) or ref_position(source_file.text, r))) for r in refs)
    return Model(
        name=name,
        path=source_file.path,
        raw_sql=source_file.text,
        rendered=rendered,
        config=merged,
        relation=relation,
        schema=schema,
        identifier=identifier,
        refs=tuple(refs),
        ref_lines=ref_lines,
        sources=tuple(sources),
        per_run=per_run,
        digest=source_file.digest,
        description=description,
        columns=columns,
        env_vars=tuple(
            sorted((k, env_digest(v)) for k, v in {**env_read, **state.env_vars}.items())
        ),
        run_dependent=run_dependent,
        package=package,
        inner=placed.inner if placed is not None else "",
    )


def _database(config: ProjectConfig) -> str | None:
    return config.warehouse.database if config.is_dbt else None


def _describe(
    value: Any,
    env: ModelEnvironment,
    file: str,
    line: int | None,
    errors: ErrorCollector,
    env_read: dict[str, str | None],
) -> str:
    """A description; ``{{ doc('name') }}`` pulls in a docs block from a .md file. The env
    vars it reads go into ``env_read`` (they are the model's: see ``Model.env_vars``)."""
    if not value:
        return ""
    text = str(value)
    if "{{" in text:
        from cadence.load.context import RenderState

        state = RenderState(file=file)
        try:
            return env.render(text, state).strip()
        except CadenceError as exc:
            exc.file, exc.line = file, line
            errors.add(exc)
            return text
        finally:
            env_read.update(state.env_vars)
    return text


def _parse_analyses(
    analysis_files: tuple[SourceFile, ...], env: ModelEnvironment, errors: ErrorCollector
) -> tuple[tuple[str, str, str], ...]:
    """dbt's analyses: rendered like models, compiled by ``cadence compile``, never run."""
    from cadence.load.context import RenderState

    out = []
    for f in analysis_files:
        try:
            sql = env.render(f.text, RenderState(file=f.path))
        except CadenceError as exc:
            errors.add(exc)
            continue
        out.append((PurePosixPath(f.path).stem, f.path, sql))
    return tuple(out)
