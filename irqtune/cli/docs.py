"""`irqtune completion SHELL` and `irqtune manpage`: what lsirq, ethtool and tuned-adm ship beside the tool.

The completion script is click's own (the `_IRQTUNE_COMPLETE` protocol), printed for the shell to source. The
man page is rendered from the same click commands `--help` shows (so the two never disagree) as roff; the wheel
installs the committed copy, man/irqtune.1, as share/man/man1/irqtune.1, and a test keeps it equal to what this
module renders.
"""

from __future__ import annotations

import datetime
import re

import click

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    Load it in the running shell, or install it for every session:
      bash:  source <(irqtune completion bash)
             irqtune completion bash > /etc/bash_completion.d/irqtune
      zsh:   irqtune completion zsh > "${fpath[1]}/_irqtune"
      fish:  irqtune completion fish > ~/.config/fish/completions/irqtune.fish

    Commands, options, choices (status --color, probe --only) and paths complete.
    """
    from click.shell_completion import get_completion_class

    root = ctx.find_root().command
    cls = get_completion_class(shell)
    assert cls is not None  # the choice names only the shells click supports
    click.echo(cls(root, {}, "irqtune", "_IRQTUNE_COMPLETE").source())


@click.command(hidden=True)
@click.option("--date", default=None, help="The date in the page's footer (default: today), for reproducible builds.")
@click.pass_context
def manpage(ctx: click.Context, date: str | None) -> None:
    """Print irqtune(1) in roff, rendered from the commands' help (man/irqtune.1 is this output)."""
    click.echo(render_manpage(ctx.find_root().command, date or datetime.date.today().isoformat()), nl=False)


def render_manpage(group: click.Group, date: str) -> str:
    """The whole page: NAME, SYNOPSIS, DESCRIPTION, global OPTIONS, one subsection per command with its options,
    EXIT STATUS, ENVIRONMENT, FILES, SEE ALSO."""
    from .. import __version__

    ctx = click.Context(group, info_name="irqtune", **group.context_settings)  # -h as well as --help, as run
    out = [f'.TH IRQTUNE 1 "{date}" "irqtune {__version__}" "User Commands"', ".SH NAME",
           r"irqtune \- " + _roff(_first_line(group.help or ""))]  # fmt: skip
    out += [".SH SYNOPSIS", r".B irqtune", r"[\fIOPTIONS\fR] \fICOMMAND\fR [\fIARGS\fR]..."]
    out += [".SH DESCRIPTION", *_paragraphs(group.help or "")]
    out += [".SH OPTIONS", *_options(group, ctx)]
    out.append(".SH COMMANDS")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = click.Context(command, info_name=name, parent=ctx, **command.context_settings)
        usage = " ".join(command.collect_usage_pieces(sub))
        out += [f".SS {_roff(name)}", rf".B irqtune {_roff(name)}", _roff(usage), ".PP"]
        out += _paragraphs(command.help or "")
        out += _options(command, sub)
        if command.epilog and command.epilog is not group.epilog:
            out += _paragraphs(command.epilog)
    out += [".SH EXIT STATUS", *_paragraphs(group.epilog or "")]
    out += [".SH ENVIRONMENT", ".TP", ".B IRQTUNE_ROOT", "Same as \\fB\\-\\-root\\fR.", ".TP", ".B IRQTUNE_STATE_DIR",
            "Same as \\fB\\-\\-state\\-dir\\fR.", ".TP", ".B NO_COLOR", "Plain text on a terminal too.",
            ".SH FILES", ".TP", ".I /etc/irqtune/irqtune.toml", "The agent's configuration (\\fBirqtune run\\fR).",
            ".TP", ".I /var/lib/irqtune/", "State: the journal of every change (what \\fBirqtune restore\\fR puts "
            "back), the managed IRQs, the agent's model of each NIC.",
            ".SH SEE ALSO", r"\fBirqbalance\fR(1), \fBethtool\fR(8), \fBlsirq\fR(1), \fBtuned\-adm\fR(8), "
            r"\fBbpftool\fR(8); README.md and docs/ in the source."]  # fmt: skip
    return "\n".join(out) + "\n"


def _options(command: click.Command, ctx: click.Context) -> list[str]:
    out = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, text = record
        out += [".TP", rf"\fB{_roff(names)}\fR", _roff(text)]
    return out


def _paragraphs(text: str) -> list[str]:
    """click help text as roff: paragraphs at blank lines, `\\b` blocks kept as they are laid out."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", click.unstyle(text).strip("\n")):
        lines = block.splitlines()
        if lines and lines[0].strip() == "\b":
            body = [line for line in lines[1:]]
            indent = min((len(line) - len(line.lstrip()) for line in body if line.strip()), default=0)
            out += [".PP", ".nf", *(_roff(line[indent:]) for line in body), ".fi"]
        elif block.strip():
            out += [".PP", _roff(" ".join(line.strip() for line in lines))]
    return out


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].rstrip(".") if text.strip() else ""


def _roff(text: str) -> str:
    """Text as roff prints it: backslashes and hyphens escaped, no line that starts a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text
