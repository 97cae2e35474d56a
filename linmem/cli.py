"""The `linmem` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linmem", description="linmem: recall-oriented linear-attention LMs")
    commands = parser.add_subparsers(dest="command", required=True)

    from . import demo
    from .cli_convert import add_convert_commands

    demo_parser = commands.add_parser("demo", help="train, save, reload and generate with a small CCQ-GDN model")
    demo.add_arguments(demo_parser)
    add_convert_commands(commands)

    args = parser.parse_args(argv)
    if args.command == "demo":
        report = demo.run_demo(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len,
                               output_dir=args.output_dir, device=args.device, new_tokens=args.new_tokens)
        if not report["loss_last_10pct"] < report["loss_first_10pct"]:
            print("error: the training loss did not fall", file=sys.stderr)
            return 1
        return 0
    from .conversion_scripts.source import ConversionError

    try:
        return args.handler(args)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
