"""Stage 1, load: project files -> ``ParsedProject``.

``loader`` finds the project (cadence.yml or dbt_project.yml) and reads every input file
through ``disk.files``, in the folders its ``layout`` names; a dbt project is read by ``dbt``
(dbt_project.yml, the profile, installed packages, dbt's names and Jinja context), entered
from the loader and, for rendering, from ``environment``; ``projectconfig`` validates
cadence.yml (with ``config`` for model config, ``channelconfig`` for channels, ``seedconfig``
for seeds, ``envtemplate`` for env_var() in settings; ``digests`` keys the load cache);
``forking`` renders many models on every core; ``properties`` and
``testspecs`` read the YAML beside the models (``yamlfile`` keeps line numbers; custom generic
tests are ``generictests``, snapshots ``snapshots``, unit tests ``unittests``); ``rendering``
is the sandboxed Jinja environment models render in, ``context`` the names a template sees
(ref, source, config, var, env_var, this, ...) and ``evaluator`` the fast path that renders
simple templates without compiling them; ``parser`` renders each model once and merges its
configuration (``perrun`` says whether a view's SQL depends on the run); ``relations`` is how
names become SQL; ``cachefile`` is the data-only format the load cache (``plan.manifest``) is
stored in.

Invariants: the only stage that reads project files; every value it returns is frozen; every
problem in the project is reported at once, each naming its file and line. Hands on to ``plan``.
"""
