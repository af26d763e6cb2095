"""Stage 1, load: project files -> ``ParsedProject``.

``loader`` finds the project and reads every input file through ``disk.files``;
``projectconfig`` validates cadence.yml (with ``config``, ``channelconfig``, ``seedconfig``);
``digests`` are the content hashes the cache keys on; ``properties`` and ``testspecs`` read the
YAML beside the models (``yamlfile`` keeps line numbers); ``rendering`` is the Jinja environment
models render in, ``context`` the names a template sees (ref, source, config, var, ...) and
``evaluator`` the fast path that renders most models without compiling them; ``parser`` renders
each model once and merges its configuration; ``relations`` is how names become SQL;
``cachefile`` is the data-only format the load cache (``plan.manifest``) is stored in.

Invariants: the only stage that reads project files; every value it returns is frozen; every
problem in the project is reported at once, each naming its file and line. Hands on to ``plan``.
"""
