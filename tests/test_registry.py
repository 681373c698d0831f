"""Registry.build: the one path from a spec (a name, a {name: ..., **kwargs} mapping, or an
instance) to an object, shared by strategies, balancers, adaptation methods, sharing modes and
backbones."""
from dataclasses import dataclass

import pytest

from taskshare.errors import ConfigError, TaskshareError
from taskshare.registry import Registry


class Base:
    pass


def _registry() -> Registry:
    reg = Registry("widget", Base)

    @reg.register("plain")
    @dataclass
    class Plain(Base):
        size: int = 3
        num_tasks: int = 1

    @reg.register("made")
    def made(width: int, depth: int = 2):
        return ("made", width, depth)

    @reg.register("open")
    def open_ended(**options):
        return options

    return reg


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(TaskshareError, match=r"unknown widget 'nope'; expected one of: made, open, plain"):
        _registry().build("nope")
    with pytest.raises(TaskshareError, match=r"unknown widget 'nope'"):
        _registry().build({"name": "nope", "size": 1})


def test_a_name_a_mapping_and_their_kwargs():
    reg = _registry()
    assert reg.build("plain").size == 3
    built = reg.build({"name": "plain", "size": 7})
    assert (built.size, built.num_tasks) == (7, 1)
    assert reg.build({"name": "made", "width": 5}) == ("made", 5, 2)


def test_an_instance_passes_through_untouched():
    reg = _registry()
    mine = Base()
    assert reg.build(mine) is mine
    with pytest.raises(TaskshareError, match=r"a widget is a name or a mapping with 'name'; got 42"):
        reg.build(42)
    with pytest.raises(TaskshareError, match=r"a mapping with 'name'; got \{'size': 2\}"):
        reg.build({"size": 2})


def test_a_bad_kwarg_names_the_key_and_the_allowed_ones():
    reg = _registry()
    with pytest.raises(ConfigError, match=r"widget plain: unknown key 'sise'; allowed keys: size, num_tasks"):
        reg.build({"name": "plain", "sise": 2})
    with pytest.raises(ConfigError, match=r"widget made: unknown key 'height'; allowed keys: depth$"):
        reg.build({"name": "made", "height": 2}, width=4)
    with pytest.raises(ConfigError, match=r"widget plain.size = 'big'; expected an integer"):
        reg.build({"name": "plain", "size": "big"})


def test_context_reaches_only_entries_that_take_it_and_the_spec_wins():
    reg = _registry()
    assert reg.build("plain", num_tasks=4).num_tasks == 4
    assert reg.build({"name": "plain", "num_tasks": 2}, num_tasks=4).num_tasks == 2
    assert reg.build("made", width=6, num_tasks=4) == ("made", 6, 2)     # made takes no num_tasks
    assert reg.build({"name": "open", "a": 1}, b=2) == {"a": 1, "b": 2}  # **options takes everything


def test_every_library_registry_builds_through_the_same_path():
    import torch
    from taskshare import Task
    from taskshare.adapt import build_method
    from taskshare.balancing import build_balancer
    from taskshare.models import build_sharing
    from taskshare.transfer import build_strategy

    assert build_strategy({"name": "last_k", "k": 2}).k == 2
    assert build_balancer("gradnorm", 3).num_tasks == 3
    assert build_method({"name": "dann", "hidden": 16}).hidden == 16
    with pytest.raises(ConfigError, match=r"unknown key 'kk'; allowed keys: k"):
        build_strategy({"name": "last_k", "kk": 2})
    with pytest.raises(ConfigError, match=r"sharing mode soft: unknown key 'alpha'; allowed keys: coupling, layers, "
                                          r"distance"):
        build_sharing("soft", lambda: torch.nn.Linear(4, 4), [Task("a", "binary")], torch.randn(2, 4), alpha=1)
    model = build_sharing("soft", lambda: torch.nn.Linear(4, 4), [Task("a", "binary"), Task("b", "binary")],
                          torch.randn(2, 4), coupling=0.5)
    assert model.coupling == 0.5
