"""``python -m ntk_core``: the command-line interface (implemented in ``runner/cli.py``).

Only this entry point imports the runner and the cache; ``import ntk_core`` stays pure.
"""

if __name__ == "__main__":
    from runner.cli import main

    raise SystemExit(main())
