"""`registry completion bash|zsh`: a shell completion script, made by shtab from the
full parser (core and plugin commands, every option), as DVC makes its own.

    eval "$(registry completion bash)"                         # this shell
    registry completion bash > ~/.local/share/bash-completion/completions/registry
    registry completion zsh > "${fpath[1]}/_registry"          # zsh

shtab is imported only here: no other command pays for it.
"""

from __future__ import annotations

import argparse


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    import shtab

    text = shtab.complete(parser, shell=shell)
    return text if text.endswith("\n") else text + "\n"
