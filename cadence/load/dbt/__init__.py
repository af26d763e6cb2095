"""Reading a dbt project: what makes a folder with ``dbt_project.yml`` a cadence project.

Entered from one place, ``load.loader`` (and ``load.parser`` for what renders), only for dbt
projects, and never on a load the cache serves: the idle ``run --due`` imports none of it.

- ``project``: dbt_project.yml read into a ``DbtProject`` (name, paths, vars, folder configs,
  hooks, dispatch);
- ``profile``: the DuckDB target of its profile, found in dbt's order, as warehouse settings;
- ``packages``: the packages ``dbt deps`` installed (their own dbt_project.yml and paths);
- ``configs``: dbt's folder-scoped ``+key`` configs as config layers, and every config key dbt
  accepts with what cadence does with it (implemented, or an error naming it);
- ``naming``: schema, alias and database as dbt's ``generate_*_name`` macros give them;
- ``context``, ``crossdb``, ``adapter``: the Jinja names dbt models use (``target``,
  ``adapter``, the ``dbt`` namespace of cross-database macros, ``run_query``, ...).
"""
