"""Parser refusals of a ``torchgeo-simclr fit`` command line, in one sentence.

jsonargparse reports a bad option or config file over many lines (a dump of
every type a ``Union`` could take) and never names the ``--config`` file a
value came from. :func:`parser_error` says, in one sentence, which file (or
option) sets which key to what, what the key takes and what to do;
:func:`one_line` is the fallback for any other refusal.
"""

import collections.abc
import difflib
import importlib
import inspect
import json
import re
import shlex
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml


def resolve(class_path: str) -> Any:
    """The object a dotted ``class_path`` names.

    Args:
        class_path: e.g. ``torchgeo_simclr.tasks.FineTuneTask``.

    Returns:
        The class (two paths to one class give the same object), or the
        path itself when it cannot be imported.
    """
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return class_path


def one_line(message: str, subcommand: str = "fit") -> str:
    """A parser's error as one line, with where to look for the options.

    Args:
        message: jsonargparse's message, possibly over several lines.
        subcommand: the command whose ``--help`` to point to (``fit``,
            ``validate``, ``test`` or ``predict --config FILE``).

    Returns:
        The message's lines joined, and a pointer to ``--help``.
    """
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    # A class's refusal, buried in jsonargparse's list of Union subtypes.
    found = re.search(
        r"Problem with given class_path '([\w.]+)': (Option '(\w+)' is not accepted)",
        text,
    )
    if found:
        class_path, refusal, option = found.groups()
        key = re.match(r'Parser key "([\w.]+)"', text)
        group = key.group(1) if key else "model"  # e.g. model, trainer.callbacks
        prefix = f"--{group}.init_args"
        text = f"{class_path}: {refusal}{suggestion(class_path, option, prefix)}"
        # `fit --help` lists the classes, not their constructors' options.
        return (
            f"{text.rstrip('.')}; torchgeo-simclr {subcommand} --{group}.help "
            f"{class_path} "
            "lists its options."
        )
    return (
        f"{text.rstrip('.')}; torchgeo-simclr {subcommand} --help lists every option."
    )


#: Options people reach for under another name: the timm backbone is ``model``.
ALIASES = {"backbone": "model", "arch": "model", "learning_rate": "lr"}


def suggestion(class_path: str, option: str, prefix: str) -> str:
    """Name the options of a class that a refused option may have meant.

    Args:
        class_path: the class whose constructor refused *option*.
        option: the refused option.
        prefix: how the command line names the class's options, e.g.
            ``--model.init_args``.

    Returns:
        ``" (did you mean --model.init_args.X?)"``, or ``""``.
    """
    target = resolve(class_path)
    if isinstance(target, str):
        return ""
    names = [n for n in inspect.signature(target).parameters if n != "self"]
    close = [ALIASES[option]] if ALIASES.get(option) in names else []
    close += [n for n in difflib.get_close_matches(option, names) if n not in close]
    if not close:
        return ""
    return f" (did you mean {' or '.join(f'{prefix}.{n}' for n in close)}?)"


#: A value a YAML file or command line does not set.
UNSET = object()

#: Keys a LightningCLI subcommand's configuration holds at its top level.
TOP_LEVEL_KEYS = (
    "seed_everything",
    "trainer",
    "model",
    "data",
    "optimizer",
    "lr_scheduler",
    "ckpt_path",
)

#: What a value of a type is, in words, by the type's name.
TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "NoneType": "null",
    "Path": "a path",
    "date": "a date (YYYY-MM-DD)",
    "dict": "a mapping",
    "list": "a list",
}

#: The same, for several values of the type.
TYPE_PLURALS = {
    "int": "whole numbers",
    "float": "numbers",
    "bool": "true/false values",
    "str": "strings",
}


class ConfigKey(NamedTuple):
    """An option of a configuration, as jsonargparse's errors name it."""

    #: The top-level key, or the dotted key of a group, e.g. ``data``,
    #: ``trainer.callbacks`` or ``trainer.max_epochs``.
    group: str
    #: The ``init_args`` option of the group's class, e.g. ``batch_size``
    #: (None: *group* is the option itself).
    name: str | None = None
    #: The class that takes :attr:`name` (None: no class).
    class_path: str | None = None

    @property
    def dotted(self) -> str:
        """The key with dots, e.g. ``data.init_args.batch_size``."""
        return (
            self.group if self.name is None else f"{self.group}.init_args.{self.name}"
        )

    @property
    def leaf(self) -> str:
        """The key's last part, as a YAML file writes it, e.g. ``batch_size``."""
        return self.name or self.group.rsplit(".", 1)[-1]

    def options(self) -> set[str]:
        """Command-line options that set this key."""
        if self.name is None:
            return {f"--{self.group}"}
        return {f"--{self.dotted}", f"--{self.group}.{self.name}"}

    def parameter(self) -> inspect.Parameter | None:
        """The constructor parameter behind the key (None where unknown)."""
        if self.name is not None and self.class_path is not None:
            owner, name = self.class_path, self.name
        elif self.group.startswith("trainer.") and self.group.count(".") == 1:
            owner, name = "lightning.pytorch.Trainer", self.group.split(".")[1]
        else:
            return None
        target = resolve(owner)
        if isinstance(target, str):
            return None
        try:
            parameters = inspect.signature(target, eval_str=True).parameters
        except (TypeError, ValueError, NameError):
            return None
        return parameters.get(name)

    def in_tree(self, tree: Any) -> list[Any]:
        """The key's values in a parsed YAML config.

        Args:
            tree: the config as ``yaml.safe_load`` reads it.

        Returns:
            Its value; for a list such as ``trainer.callbacks``, the value of
            every entry of :attr:`class_path` that sets it, in order; empty
            where the config does not set it.
        """
        node = tree
        for part in self.group.split("."):
            if not isinstance(node, dict) or part not in node:
                return []
            node = node[part]
        if self.name is None:
            return [node]
        found = []
        for entry in node if isinstance(node, list) else [node]:
            if not isinstance(entry, dict):
                continue
            given = entry.get("class_path")
            if (
                isinstance(given, str)
                and self.class_path is not None
                and given.rsplit(".", 1)[-1] != self.class_path.rsplit(".", 1)[-1]
            ):
                continue
            init_args = entry.get("init_args")
            if isinstance(init_args, dict) and self.name in init_args:
                found.append(init_args[self.name])
            elif self.name in entry:
                found.append(entry[self.name])
        return found


class Setting(NamedTuple):
    """Where the value of a key that the parser refused was given."""

    #: The ``--config`` file, or the command-line option, that set it.
    source: str
    #: Whether :attr:`source` is a ``--config`` file.
    from_file: bool
    #: The value as the file or the command line gave it.
    value: Any


def option_values(tokens: Sequence[str]) -> Iterator[tuple[str, str | None]]:
    """Each option of a command line with the value after it.

    Args:
        tokens: the command line, e.g. ``["fit", "--config", "a.yaml"]``.

    Yields:
        ``(option, value)`` pairs, e.g. ``("--config", "a.yaml")``; value
        None for an option last on the line.
    """
    for i, token in enumerate(tokens):
        if not token.startswith("--"):
            continue
        option, equals, inline = token.partition("=")
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        yield option, inline if equals else following


def read_config(path: str) -> Any:
    """A ``--config`` file as YAML reads it (:data:`UNSET` if it cannot be read)."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return UNSET


def config_files(tokens: Sequence[str]) -> list[str]:
    """The ``--config`` files of a command line, in order."""
    return [v for o, v in option_values(tokens) if o == "--config" and v is not None]


def as_yaml(value: Any) -> Any:
    """*value* as YAML reads it where it is text (else *value* itself)."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def settings_of(key: ConfigKey, tokens: Sequence[str]) -> list[Setting]:
    """Every ``--config`` file and option of a command line that sets *key*.

    Args:
        key: the key.
        tokens: the command line.

    Returns:
        The settings, in command-line order (a file that sets it in several
        entries of a list, e.g. two callbacks, once for each).
    """
    settings = []
    options = key.options()
    for option, value in option_values(tokens):
        if option == "--config" and value is not None:
            tree = read_config(value)
            settings += [Setting(value, True, given) for given in key.in_tree(tree)]
        elif option in options:
            settings.append(Setting(option, False, value))
    return settings


def holds(value: Any, refused: str) -> bool:
    """Whether a setting's *value* is, or holds, the value a parser refused.

    Args:
        value: the value as a config file or the command line gives it.
        refused: the refused value as the parser's message shows it: the
            whole value, or one item of a list.

    Returns:
        True where *value*, or an item of it, reads as *refused*.
    """
    shown = as_yaml(refused)
    items = [value, *(value if isinstance(value, list | tuple) else ())]
    parsed = as_yaml(value)
    if isinstance(parsed, list):
        items += parsed
    return any(str(item) == refused or as_yaml(item) == shown for item in items)


def where_set(
    settings: Sequence[Setting], refused: str | None = None
) -> Setting | None:
    """The ``--config`` file or option that set a key to the refused value.

    Args:
        settings: every setting of the key, from :func:`settings_of`.
        refused: the refused value as the parser's message shows it (None:
            not shown).

    Returns:
        The first setting that is or holds *refused* (the parser refuses a
        bad value where it reads it, even if a later file sets a good one);
        without *refused*, the last setting; None where no setting matches or
        there is none (e.g. a whole ``--data`` given as JSON).
    """
    if refused is None:
        return settings[-1] if settings else None
    return next((s for s in settings if holds(s.value, refused)), None)


def yaml_text(value: Any) -> str:
    """*value* as a YAML config or command line writes it, e.g. ``null``."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    except (TypeError, ValueError):
        return str(value)


def described(annotation: Any) -> str:
    """What a type annotation takes, in words, e.g. ``a number or null``.

    Args:
        annotation: e.g. ``float | None``.

    Returns:
        The words.
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(described(a) for a in args))
    if origin is typing.Literal:
        return f"one of {', '.join(str(a) for a in args)}"
    if origin in (tuple, list, collections.abc.Sequence):
        items = [a for a in args if a is not Ellipsis]
        names = {getattr(a, "__name__", "") for a in items}
        count = f"{len(items)} " if origin is tuple and Ellipsis not in args else ""
        if len(names) == 1 and (name := names.pop()) in TYPE_PLURALS:
            return f"a list of {count}{TYPE_PLURALS[name]}"
        return "a list"
    if origin is dict:
        return TYPE_WORDS["dict"]
    name = getattr(annotation, "__name__", str(annotation))
    return TYPE_WORDS.get(name, f"a {name}")


def annotation_text(annotation: Any) -> str:
    """A type annotation as Python writes it, without module prefixes."""
    text = inspect.formatannotation(annotation)
    return re.sub(r"\b(?:typing|datetime|pathlib|collections\.abc)\.", "", text)


def expected_in(message: str) -> tuple[str, str] | None:
    """The types a jsonargparse refusal expected, in words and as annotation.

    Args:
        message: the part of the refusal about one key.

    Returns:
        e.g. ``("true or a whole number", "bool | int")``, or None where the
        message names no type.
    """
    subtypes = re.search(r"Subtypes: \[([^\]]*)\]", message)
    if subtypes:
        names = re.findall(r"<class '(?:[\w]+\.)*(\w+)'>", subtypes.group(1))
    else:
        names = re.findall(r"Expected a <class '(?:[\w]+\.)*(\w+)'>", message)[:1]
    if not names:
        return None
    words = " or ".join(dict.fromkeys(TYPE_WORDS.get(n, f"a {n}") for n in names))
    return words, " | ".join("None" if n == "NoneType" else n for n in names)


def type_error(text: str, tokens: Sequence[str]) -> str | None:
    """A refused value of the wrong type, in one sentence naming where it was set.

    Args:
        text: jsonargparse's message, on one line.
        tokens: the command line.

    Returns:
        The sentence, naming the ``--config`` file (or option) and the key,
        the type it takes, the value found and a value it takes; None where
        *text* is not such a refusal.
    """
    group = re.match(r'Parser key "([\w.]+)": ', text)
    if group is None:
        return None
    nested = re.search(
        r"Problem with given class_path '([\w.]+)': Parser key \"(\w+)\": (.*)", text
    )
    if nested:
        class_path, name, tail = nested.groups()
        key = ConfigKey(group.group(1), name, class_path)
    elif "class_path" in text or "subclass" in text:
        return None
    else:
        key, tail = ConfigKey(group.group(1)), text[group.end() :]
    if "Expected a" not in tail:
        return None
    parameter = key.parameter()
    if parameter is not None and parameter.annotation is not inspect.Parameter.empty:
        words = described(parameter.annotation)
        annotation = annotation_text(parameter.annotation)
    elif (expected := expected_in(tail)) is not None:
        words, annotation = expected
    else:
        return None
    given = re.search(r"(?:Got|Given) value: (.*?)(?: - |$)", tail)
    refused = None if given is None else given.group(1)
    settings = settings_of(key, tokens)
    setting = where_set(settings, refused)
    if setting is not None:
        value = setting.value
        found = repr(value) if isinstance(value, str) else yaml_text(value)
    else:
        found = "another value" if refused is None else repr(refused)
    # A default of None says nothing of the type: the words do.
    default = None if parameter is None else parameter.default
    example = None if default is inspect.Parameter.empty else default
    takes = f"takes {words} ({annotation})"
    if setting is None:
        sources = list(dict.fromkeys(repr(s.source) for s in settings))
        where = (
            "the --config file or on the command line"
            if not sources
            else f"whichever of {', '.join(sources)} sets it so"
        )
        return (
            f"The configuration sets {key.dotted} to {found}, but {key.leaf} "
            f"{takes}; set it to {words} in {where}."
        )
    # The parser refuses a value as it reads it: a later setting cannot mend it.
    later = settings[settings.index(setting) + 1 :]
    override = (
        " (a later --config or option does not override a value refused here)"
        if later
        else ""
    )
    if setting.from_file:
        fix = f"change it there to {words}"
        if example is not None:
            fix = (
                f"change it there, e.g. to {key.leaf}: {yaml_text(example)} (the "
                "default)"
            )
        return (
            f"Config file {setting.source!r} sets {key.dotted} to {found}, but "
            f"{key.leaf} {takes}; {fix}{override}."
        )
    fix = f"pass {words}"
    if example is not None:
        fix = (
            f"pass e.g. {setting.source} {shlex.quote(yaml_text(example))} (the "
            "default)"
        )
    return f"{setting.source} got {found}, but it {takes}; {fix}{override}."


def unknown_key_error(text: str, tokens: Sequence[str]) -> str | None:
    """A key a ``--config`` file sets that nothing takes, naming the file.

    Args:
        text: jsonargparse's message, on one line.
        tokens: the command line.

    Returns:
        One sentence with the file, the key and the keys it may have meant;
        None where *text* is another refusal, or the key came from the
        command line (:func:`one_line` names it).
    """
    refused = re.search(
        r"Problem with given class_path '([\w.]+)': Option '(\w+)' is not accepted",
        text,
    )
    subcommand = re.match(r"Subcommand '(\w+)' does not accept option '([\w.]+)'", text)
    if refused:
        group = re.match(r'Parser key "([\w.]+)"', text)
        class_path, option = refused.groups()
        key = ConfigKey(group.group(1) if group else "model", option, class_path)
        meant = suggestion(class_path, option, f"{key.group}.init_args")
        refuser = class_path
        listing = (
            f"torchgeo-simclr fit --{key.group}.help {class_path} lists its options"
        )
    elif subcommand:
        refuser, dotted = subcommand.groups()
        key = ConfigKey(dotted)
        parent, _, leaf = dotted.rpartition(".")
        if parent == "trainer":
            meant = suggestion("lightning.pytorch.Trainer", leaf, "trainer")
        else:
            # The top-level key, misspelt, e.g. `dat:` for `data:`.
            head, dot, rest = dotted.partition(".")
            close = [
                f"{c}{dot}{rest}"
                for c in difflib.get_close_matches(head, TOP_LEVEL_KEYS)
            ]
            meant = f" (did you mean {' or '.join(close)}?)" if close else ""
        listing = f"torchgeo-simclr {refuser} --help lists every option"
    else:
        return None
    setting = where_set(settings_of(key, tokens))
    if setting is None or not setting.from_file:
        return None
    return (
        f"Config file {setting.source!r} sets {key.dotted}, which {refuser} does "
        f"not accept{meant}; rename or remove it there ({listing})."
    )


#: The keys of a class's entry in a config, beside its options.
ENTRY_KEYS = ("class_path", "init_args", "dict_kwargs")


def entry_key_error(text: str, tokens: Sequence[str]) -> str | None:
    """A misspelt key of a class's entry (``init_arg:``), naming the file.

    jsonargparse then refuses the entry naming the base class (its options
    "not accepted", or the class "abstract"), not the key.

    Args:
        text: jsonargparse's message, on one line.
        tokens: the command line.

    Returns:
        One sentence with the file, the key and the key it may have meant;
        None where *text* refuses no entry, or no ``--config`` file gives the
        entry a misspelt key.
    """
    group = re.match(r'Parser key "([\w.]+)"', text)
    if group is None or "class_path" not in text:
        return None
    for path in config_files(tokens):
        found = ConfigKey(group.group(1)).in_tree(read_config(path))
        entries = [e for v in found for e in (v if isinstance(v, list) else [v])]
        for entry in entries:
            if not isinstance(entry, dict) or "class_path" not in entry:
                continue
            for key in entry:
                close = difflib.get_close_matches(str(key), ENTRY_KEYS, n=1)
                if key not in ENTRY_KEYS and close:
                    return (
                        f"Config file {path!r} sets {group.group(1)}.{key}, which "
                        f"is not a key of a class's entry (did you mean "
                        f"{group.group(1)}.{close[0]}?); rename it there (a "
                        "class's options go under init_args:, beside class_path:)."
                    )
    return None


def file_error(text: str, tokens: Sequence[str]) -> str | None:
    """A ``--config`` file that is not valid YAML, or not a mapping, named.

    Args:
        text: jsonargparse's message, on one line.
        tokens: the command line.

    Returns:
        One sentence naming the file and, for a YAML error, the line and
        column; None where *text* is another refusal or no file is at fault.
    """
    if not text.startswith(("Problems parsing config", "Unexpected config")):
        return None
    for path in config_files(tokens):
        try:
            tree = yaml.safe_load(Path(path).read_text())
        except yaml.MarkedYAMLError as error:
            where = ""
            if (mark := error.problem_mark) is not None:
                where = f" at line {mark.line + 1}, column {mark.column + 1}"
            context = ""
            if error.context and (start := error.context_mark) is not None:
                context = (
                    f" ({error.context} at line {start.line + 1}, column "
                    f"{start.column + 1})"
                )
            return (
                f"Config file {path!r} is not valid YAML: {error.problem}{where}"
                f"{context}; fix the file there (a bracket or quote left open, or "
                "indentation out of line, are the usual causes)."
            )
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if tree is None:
            return (
                f"Config file {path!r} holds no options (it is empty or all "
                "comments); write its options as keys (trainer:, model:, data: "
                f"...) like conf/simclr_quickstart.yaml, or leave out --config {path}."
            )
        if not isinstance(tree, dict):
            return (
                f"Config file {path!r} holds {described(type(tree))}, not options "
                "by name; write it as a mapping of keys (trainer:, model:, data: "
                "...) like conf/simclr_quickstart.yaml."
            )
    return None


def repeated_keys(node: yaml.Node, path: str = "") -> Iterator[tuple[str, int, int]]:
    """Each key that a YAML mapping gives twice, at any depth.

    Args:
        node: a composed YAML document (``yaml.compose``).
        path: the dotted key of *node* (empty for the document).

    Yields:
        ``(dotted key, first line, second line)``, lines counted from 1, e.g.
        ``("model.init_args.lr", 5, 12)``.
    """
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            dotted = f"{path}.{name}" if path else name
            line = key.start_mark.line + 1
            if name in seen and name != "<<":
                yield dotted, seen[name], line
            seen.setdefault(name, line)
            yield from repeated_keys(value, dotted)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from repeated_keys(item, f"{path}[{i}]")


def repeated_key_error(tokens: Sequence[str]) -> str | None:
    """A ``--config`` file that gives a key twice, named with both lines.

    YAML keeps the last of the two values without a word, so a setting a user
    edited higher up in the file may never take effect.

    Args:
        tokens: the command line.

    Returns:
        One sentence naming the file, the key and both lines; None where no
        file gives a key twice (or a file cannot be read as YAML, which the
        parser then reports).
    """
    for path in config_files(tokens):
        try:
            document = yaml.compose(Path(path).read_text(), Loader=yaml.SafeLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if document is None:
            continue
        for key, first, second in repeated_keys(document):
            return (
                f"Config file {path!r} sets {key} twice, at lines {first} and "
                f"{second}, and YAML would silently keep only the second; delete "
                "the one you did not mean there."
            )
    return None


def holds_text(tree: Any, text: str) -> bool:
    """Whether a parsed YAML config holds the string *text* anywhere."""
    if isinstance(tree, dict):
        return any(holds_text(value, text) for value in tree.values())
    if isinstance(tree, list):
        return any(holds_text(value, text) for value in tree)
    return bool(tree == text)


def class_path_error(text: str, tokens: Sequence[str]) -> str | None:
    """A ``class_path`` that names no class, naming the file and the class meant.

    Args:
        text: jsonargparse's message, on one line.
        tokens: the command line.

    Returns:
        One sentence naming the ``--config`` file (or the command line) that
        gives the class path, why it cannot be imported and the classes of
        its module it may have meant; None where *text* is another refusal.
    """
    missing = re.search(
        r"Problem with given class_path '([\w.]+)': module '([\w.]+)' has no "
        r"attribute '(\w+)'",
        text,
    )
    if missing is None:
        return None
    class_path, module, name = missing.groups()
    group = re.match(r'Parser key "([\w.]+)"', text)
    key = f"{group.group(1)}.class_path" if group else "class_path"
    try:
        names = [n for n in dir(importlib.import_module(module)) if n[:1].isupper()]
    except ImportError:
        names = []
    close = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
    meant = (
        f" (did you mean {' or '.join(f'{module}.{c}' for c in close)}?)"
        if close
        else ""
    )
    source = next(
        (
            f"Config file {path!r}"
            for path in config_files(tokens)
            if holds_text(read_config(path), class_path)
        ),
        "The command line",
    )
    return (
        f"{source} sets {key} to {class_path}, but {module} has no {name}{meant}; "
        "correct the class path there."
    )


def parser_error(message: str, tokens: Sequence[str]) -> str:
    """A parser's refusal as one sentence, naming the config file at fault.

    Args:
        message: jsonargparse's message, possibly over several lines.
        tokens: the command line, e.g. ``["fit", "--config", "a.yaml"]``.

    Returns:
        For a value of the wrong type, a key nothing takes, a class path that
        names no class, or a file that is not YAML: one sentence naming the
        ``--config`` file (or option), the key, what was expected and found,
        and what to do; else :func:`one_line`'s.
    """
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    for explain in (
        file_error,
        class_path_error,
        entry_key_error,
        unknown_key_error,
        type_error,
    ):
        if (sentence := explain(text, tokens)) is not None:
            return sentence
    subcommand = tokens[0] if tokens and not tokens[0].startswith("-") else "fit"
    if subcommand == "predict":  # without --config, predict is the map command
        subcommand = "predict --config FILE"
    return one_line(message, subcommand)


def named_config_file(error: BaseException, tokens: Sequence[str]) -> BaseException:
    """A model's or datamodule's error, saying which ``--config`` file set its option.

    Constructors name their options as the command line writes them
    (``--data.init_args.split_fractions``); where a config file gave the
    value, the message names that file and the key as the file writes it.

    Args:
        error: the constructor's error.
        tokens: the command line.

    Returns:
        *error* itself where it names no option, or the option was not set by
        a config file; else an error of the same type, its message starting
        ``In config file 'FILE':`` and naming the key without ``--``.
    """
    text = str(error)
    found = re.search(r"--(model|data)\.init_args\.(\w+)", text)
    if found is None:
        return error
    setting = where_set(settings_of(ConfigKey(*found.groups()), tokens))
    if setting is None or not setting.from_file:
        return error
    text = re.sub(r"--((?:model|data)\.init_args\.\w+)", r"\1", text)
    return type(error)(f"In config file {setting.source!r}: {text}")
