"""Stage 1, load: project files -> ``ParsedProject``.

``loader`` finds the project and reads cadence.yml (``config``, ``channelconfig``,
``seedconfig``) and every input file through ``disk.files``; ``properties`` and ``testspecs``
read the YAML beside the models (``yamlfile`` keeps line numbers); ``rendering`` is the Jinja
environment models render in; ``parser`` renders each model once and merges its configuration;
``relations`` is how names become SQL; ``cachefile`` is the data-only format the load cache
(``plan.manifest``) is stored in.

Invariants: the only stage that reads project files; every value it returns is frozen; every
problem in the project is reported at once, each naming its file and line. Hands on to ``plan``.
"""
