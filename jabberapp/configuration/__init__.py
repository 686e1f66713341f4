"""
The parts of the configuration, one module each; ``jabberapp.config`` is their public face.

- ``options``: the option schema type (``Option``) and its value types, which every
  extension imports;
- ``settings``: the frozen objects a loaded configuration is made of, and ``ConfigError``;
- ``core``: the schema of the core sections ([server], [c2s], [s2s], ...);
- ``loader``: INI file -> validated ``ServerConfig``;
- ``example``: the config.example.ini writer.

Empty on purpose (STYLE.md §1): importing one part does not load the others.
"""
