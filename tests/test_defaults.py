"""config.yaml is the one place a default lives: no core function gives a config-set parameter a Python default.

Which parameters a config key sets is found in the package's own source (read with ``ast``, nothing
imported), not in a list kept by hand, so a moved or renamed function is checked all the same:

* by name: the stages pass config keys by name, so a parameter named like a config.yaml key
  (``batch_size``, ``scales``, ``device``, ``crf``...) is one;
* by call: a parameter that some call in the package hands a config value, under any name,
  positionally or by keyword (``save_map_file(..., dtype=storage_dtype)``,
  ``segment_images(..., crf_params=crf_params_of(crf))``), also through ``self.`` attributes,
  ``**kwargs``, ``super().__init__`` and a function handed to a pool with its jobs. A config value reads
  a config key (``settings["storage_dtype"]``) or a config-set parameter, or passes one on (a local
  variable, a package function of one, a tuple holding one); a value derived from one
  (``len(classes)``, ``size + 1``) is no copy of a key and does not count. The search repeats until
  it finds no new parameter.

A Python default on a config-set parameter would be a second, silently drifting copy of the config's
value, or a value the pipeline never uses; every caller (the stages, the tests, the benchmarks) passes
it instead. Parameters that no config value reaches keep their defaults (``atomic``, ``eps``,
``chunk``, ``return_attention``, ``overlay_dir``...). NOT_CONFIG_SET names the few parameters the
search flags that no config key sets, each with its reason.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import mctformer
from helpers.workflow import shipped_config

# Flagged by the search, set by no config key: "module:qualname(parameter)", grouped by the reason above each line.
NOT_CONFIG_SET = {
    # named like resources.default by coincidence: what a variant without a row in the paper's Table 5 shows
    "mctformer.paper:seed_miou(default)",
    # the images of the splits a stage reads (derived, not a config value); None: every image the labels file holds
    "mctformer.data.labels:load_class_labels(ids)",
    # named like deeplab.dilation / deeplab.dropout (the head's) by coincidence: inside a backbone, the architecture fixes these
    "mctformer.models.backbones:conv_bn_relu(dilation)", "mctformer.models.backbones:PreActBlock.__init__(dilation)",
    "mctformer.models.backbones:PreActBlock.__init__(dropout)",
    # a process-pool helper: every caller passes its stage's workers, or a pool (then workers is unused)
    "mctformer.parallel:map_in_processes(workers)",
    # the checkpoint records these: None accepts the recorded one, a value given is checked against it
    "mctformer.training.affinity:load_affinity_net(backbone)", "mctformer.training.irn:load_boundary_net(backbone)",
    "mctformer.training.deeplab:load_deeplab(head)", "mctformer.training.classifier:load_classifier(version)",
    "mctformer.training.classifier:load_classifier(class_names)",
    # reached by a config value, no copy of one: only the wording of an error (check_config passes classifier.arch)
    "mctformer.models.registry:check_last_k(model)",
    # an image size walk_geometry derives from psa.walk_scale; None: unscaled
    "mctformer.psa.geometry:seed_scores_on_grid(scaled)", "mctformer.psa.geometry:walk_to_mask(scaled)",
    # tqdm's iterable, what a stage iterates (ids, jobs; None: a manual bar), and a picture's own size checked against its
    # mask: both ride in a pool's job tuple beside config values
    "mctformer.logs:progress_bar(iterable)", "mctformer.logs:LogLineProgress.__init__(iterable)", "mctformer.data.voc:VOCLayout.load_mask(expected_shape)",
    # named like the top-level `device` key: the torch device the GWRP weights are made on, the scores' own (None: CPU)
    "mctformer.models.mctformer:gwrp_weights(device)",
    # the images that get an overlay, a slice of the stage's whole id list (maps.overlays of them) that a shard of the
    # stage passes; None: the first num_overlays of the ids extracted (the unsharded stage's)
    "mctformer.localize:extract_maps(overlay_ids)",
}


def named(module: str, qualname: str, parameter: str) -> str:
    return f"{module}:{qualname}({parameter})"


@functools.cache
def config_keys() -> tuple[frozenset[str], frozenset[str]]:
    """(the leaf key names of config.yaml as the workflow resolves it, the reference switches included, every key name
    of it, sections included), less the rule names under resources.rules (``class_labels: {threads: 8}`` names a
    rule, not a setting; its ``threads`` is one)."""
    leaves, names = set(), set()

    def walk(node, path):
        for key, value in node.items():
            if path != ("resources", "rules"):
                names.add(key)
            if isinstance(value, dict) and value:
                walk(value, (*path, key))
            else:
                leaves.add(key)

    walk(shipped_config(), ())
    return frozenset(leaves), frozenset(names)


PACKAGE = Path(mctformer.__file__).resolve().parent


def package_modules() -> dict[str, Path]:
    """Every module of the core package and its source, found by walking its folder (stages.py or a stages/ package alike)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] != "__main__":
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


class Callable:
    """A function, a method or a dataclass of the package: its parameters in order, as a call binds them."""

    def __init__(self, module: str, qualname: str, parameters: dict[str, str | None], bound: bool, node, bases: tuple[str, ...] = ()) -> None:
        self.module, self.qualname, self.node = module, qualname, node
        self.parameters = list(parameters)
        self.defaults = parameters  # parameter -> the source of its Python default, None for none
        self.bound = bound
        self.bases = bases  # a method's class's base classes, by name (for super().__init__)
        self.kwargs = node.args.kwarg.arg if node is not None and node.args.kwarg else None
        # how many parameters a positional argument can fill (keyword-only ones cannot)
        self.positionals = len(parameters) if node is None else len(node.args.posonlyargs) + len(node.args.args)

    @property
    def key(self) -> tuple[str, str]:
        return self.module, self.qualname

    def positional(self, index: int, via_instance: bool) -> str | None:
        index += 1 if (self.bound and via_instance) else 0
        return self.parameters[index] if index < self.positionals else None


def is_dataclass_node(node: ast.ClassDef) -> bool:
    return any("dataclass" in ast.unparse(decorator) for decorator in node.decorator_list)


def function_parameters(node) -> dict[str, str | None]:
    """A def's parameters in order (``*args`` and ``**kwargs`` aside), each with the source of its default or None."""
    arguments = node.args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults = [None] * (len(positional) - len(arguments.defaults)) + [ast.unparse(d) for d in arguments.defaults]
    keyword_defaults = [None if d is None else ast.unparse(d) for d in arguments.kw_defaults]
    return {a.arg: d for a, d in zip([*positional, *arguments.kwonlyargs], [*defaults, *keyword_defaults])}


def dataclass_fields(node: ast.ClassDef) -> dict[str, str | None]:
    """A dataclass's fields in order, each with the source of its default (``= value`` or ``field(...)``) or None."""
    return {
        statement.target.id: None if statement.value is None else ast.unparse(statement.value)
        for statement in node.body
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and "ClassVar" not in ast.unparse(statement.annotation)
    }


@functools.cache
def package_callables() -> dict[str, list[Callable]]:
    """Short name -> the package's callables of that name (a class by its name: its __init__ or dataclass fields)."""
    by_name: dict[str, list[Callable]] = {}

    def add(name: str, item: Callable) -> None:
        by_name.setdefault(name, []).append(item)

    for module, path in package_modules().items():
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                add(node.name, Callable(module, node.name, function_parameters(node), False, node))
            elif isinstance(node, ast.ClassDef):
                if is_dataclass_node(node):
                    add(node.name, Callable(module, node.name, dataclass_fields(node), False, None))
                bases = tuple(called_name(base) for base in node.bases)
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        decorators = {ast.unparse(d) for d in item.decorator_list}
                        if "property" in decorators or any(d.endswith((".setter", ".getter")) for d in decorators):
                            continue  # an attribute, not called with arguments
                        parameters = function_parameters(item)
                        bound = "staticmethod" not in decorators and bool(parameters) and next(iter(parameters)) in ("self", "cls")
                        method = Callable(module, f"{node.name}.{item.name}", parameters, bound, item, bases)
                        add(item.name, method)
                        if item.name == "__init__":
                            add(node.name, method)
    return by_name


CONVERSIONS = {"tuple", "list", "float", "int", "bool", "str", "Path"}  # the same value in another type


def reads_config(expression, tainted: set[str], attributes: set[str], keys: set[str], callables=()) -> bool:
    """Whether an expression is a config value: it reads a config key (``x["key"]``, ``x.get("key")``), is a name or a
    ``self.`` attribute holding one, or hands one on (a package function of one, a conversion, a tuple holding one,
    ``a if c else b``, ``a or b``). Derived values (``len(classes)``, ``size + 1``) are not: they are no copy of a key."""

    def check(node) -> bool:
        if isinstance(node, ast.Name):
            return node.id in tainted
        if isinstance(node, ast.Attribute):
            return isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr in attributes
        if isinstance(node, ast.Subscript):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                return node.slice.value in keys
            return check(node.value)
        if isinstance(node, ast.Call):
            name = called_name(node.func)
            if name == "get" and node.args and isinstance(node.args[0], ast.Constant):
                return node.args[0].value in keys
            if name in CONVERSIONS or name in callables:
                return any(check(argument) for argument in (*node.args, *(keyword.value for keyword in node.keywords)))
            return False
        if isinstance(node, (ast.Tuple, ast.List)):
            return any(check(element) for element in node.elts)
        if isinstance(node, ast.Starred):
            return check(node.value)
        if isinstance(node, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
            return any(check(generator.iter) for generator in node.generators)  # int(rate) for rate in aspp_dilations
        if isinstance(node, ast.IfExp):
            return check(node.body) or check(node.orelse)
        if isinstance(node, ast.BoolOp):
            return any(check(value) for value in node.values)
        return False

    return check(expression)


def assigned_names(target) -> list[str]:
    """The plain names an assignment target binds (``a``, ``a, b = ...``; not ``self.a`` or ``a[i]``)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in assigned_names(element)]
    return assigned_names(target.value) if isinstance(target, ast.Starred) else []


def is_step(node) -> bool:
    """An assignment with a value, or ``name.append(...)`` / ``name.extend(...)``."""
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return node.value is not None
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("append", "extend")
            and isinstance(node.func.value, ast.Name))


def called_name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def calls_in(caller: Callable, callables: dict[str, list[Callable]]):
    """(callee, positional arguments, keyword arguments, via an instance) of each call in ``caller`` to a package callable:
    by name (a method by its name, whatever its class), ``super().__init__`` as the base class's, and a callable handed to
    another call (``pool.submit(f, *args, **kwargs)``, ``partial(f, ...)``, ``map_in_processes(f, jobs)``) with that call's
    other arguments."""
    for node in ast.walk(caller.node):
        if not isinstance(node, ast.Call):
            continue
        name = called_name(node.func)
        if name == "__init__":
            if isinstance(node.func.value, ast.Call) and called_name(node.func.value.func) == "super":
                for base in caller.bases:
                    for callee in callables.get(base, []):
                        yield callee, node.args, node.keywords, True
            continue
        for callee in callables.get(name, []):
            via_instance = isinstance(node.func, ast.Attribute) or callee.qualname.endswith(".__init__")
            yield callee, node.args, node.keywords, via_instance
        for index, argument in enumerate(node.args):
            if isinstance(argument, ast.Name):
                for callee in callables.get(argument.id, []):
                    yield callee, node.args[index + 1:], node.keywords, callee.qualname.endswith(".__init__")


@functools.cache
def config_set_parameters() -> frozenset[tuple[str, str, str]]:
    """(module, qualified name, parameter) of every config-set parameter, by name and by call, to a fixed point."""
    leaves, keys = config_keys()
    callables = package_callables()
    everything = {(c.module, c.qualname): c for items in callables.values() for c in items if c.node is not None or "." not in c.qualname}
    by_name = {(c.module, c.qualname, p) for c in everything.values() for p in c.parameters if p in keys}
    found = set(by_name)
    attributes: dict[tuple[str, str], set[str]] = {}  # (module, class) -> its self. attributes that hold a config value
    packed: dict[tuple[str, str], set[str]] = {}  # a callable -> the keywords with config values that reach its **kwargs
    # what the search reads of each function's body, collected once: its assignments, its list appends, its calls
    steps = {key: [node for node in ast.walk(c.node) if is_step(node)] for key, c in everything.items() if c.node is not None}
    calls = {key: list(calls_in(c, callables)) for key, c in everything.items() if c.node is not None}
    while True:
        new, new_attributes, grown = set(), {}, False
        for caller in everything.values():
            if caller.node is None:
                continue
            owner = (caller.module, caller.qualname.split(".")[0]) if "." in caller.qualname else None
            own_attributes = attributes.get(owner, set())
            tainted = {p for p in caller.parameters if (caller.module, caller.qualname, p) in found}
            size = -1
            while size != len(tainted):  # locals assigned from config values, to a fixed point
                size = len(tainted)
                for node in steps[caller.key]:
                    if isinstance(node, ast.Call):  # jobs.append((..., a config value, ...))
                        if any(reads_config(a, tainted, own_attributes, keys, callables) for a in node.args):
                            tainted.add(node.func.value.id)
                    elif reads_config(node.value, tainted, own_attributes, keys, callables):
                        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                        tainted.update(name for target in targets for name in assigned_names(target))
                        new_attributes.setdefault(owner, set()).update(
                            target.attr for target in targets
                            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self")
            for callee, arguments, keywords, via_instance in calls[caller.key]:
                for index, argument in enumerate(arguments):
                    parameter = callee.positional(index, via_instance)
                    if parameter and not isinstance(argument, ast.Starred) and reads_config(argument, tainted, own_attributes, keys, callables):
                        new.add((callee.module, callee.qualname, parameter))
                for keyword in keywords:
                    if keyword.arg is None and isinstance(keyword.value, ast.Name) and keyword.value.id == caller.kwargs:
                        # f(..., **kwargs) hands on the config values that reached the caller's **kwargs
                        new.update((callee.module, callee.qualname, name) for name in packed.get(caller.key, ()) if name in callee.parameters)
                    elif keyword.arg is not None and reads_config(keyword.value, tainted, own_attributes, keys, callables):
                        if keyword.arg in callee.parameters:
                            new.add((callee.module, callee.qualname, keyword.arg))
                        elif callee.kwargs and keyword.arg not in packed.setdefault(callee.key, set()):
                            packed[callee.key].add(keyword.arg)
                            grown = True
        grown = grown or any(not names <= attributes.get(owner, set()) for owner, names in new_attributes.items() if owner)
        for owner, names in new_attributes.items():
            if owner:
                attributes.setdefault(owner, set()).update(names)
        if new <= found and not grown:
            return frozenset(found)
        found |= new


@functools.cache
def config_set_defaults() -> dict[str, list[str]]:
    """module -> ``qualname(parameter=default)`` of each config-set parameter there that has a Python default (the allow-list aside)."""
    by_key = {c.key: c for items in package_callables().values() for c in items}
    found: dict[str, list[str]] = {}
    for module, qualname, parameter in sorted(config_set_parameters()):
        if named(module, qualname, parameter) in NOT_CONFIG_SET:
            continue
        default = by_key[module, qualname].defaults[parameter]
        if default is not None:
            found.setdefault(module, []).append(f"{qualname}({parameter}={default})")
    return found


@pytest.mark.parametrize("module", list(package_modules()))
def test_config_set_parameters_have_no_python_default(module):
    assert not config_set_defaults().get(module), (
        f"{module}: config-set parameters with a Python default: {config_set_defaults()[module]}; config.yaml is the only place "
        "a default lives, pass the config's value instead (or, for a parameter no config key sets, say why in NOT_CONFIG_SET)"
    )


def test_the_search_finds_the_config_set_parameters():
    """Not vacuous: the hand-kept list this search replaced had 189 (function, parameter) pairs, 29 of them under a
    name no config key has (``dtype``, ``scale_setting``, ``crf_params``...); the search finds at least as many of each."""
    found = config_set_parameters()
    renamed = {(qualname, parameter) for _, qualname, parameter in found if parameter not in config_keys()[1]}
    assert len(found) >= 189 and len(renamed) >= 29, (len(found), sorted(renamed))


def test_the_allow_list_names_real_parameters_the_search_flags():
    """NOT_CONFIG_SET stays true: each entry is a parameter that exists and that the search flags."""
    flagged = {named(*found) for found in config_set_parameters()}
    assert NOT_CONFIG_SET <= flagged, sorted(NOT_CONFIG_SET - flagged)


def test_builders_read_every_key_from_the_settings():
    """build_classifier / build_deeplab take the whole config section: a key it lacks is an error, not a fallback."""
    from helpers.workflow import tiny_config
    from mctformer.training import classifier as train_classifier
    from mctformer.training import deeplab as train_deeplab

    for build, section, extra in ((train_classifier.build_classifier, "classifier", 4), (train_deeplab.build_deeplab, "deeplab", 5)):
        settings = tiny_config()[section]
        for key in ("pretrained", "patchcam_init") if section == "classifier" else ("pretrained", "classifier_kernel", "head_init"):
            with pytest.raises(KeyError, match=key):
                build({k: v for k, v in settings.items() if k != key}, extra)
