"""One module per pipeline stage: a frozen ``Config`` dataclass (the stage's command-line
options, validated before any compute) and ``run(config)``, which reads the stage's inputs,
calls the library and writes its outputs atomically."""
