from dataset_registry.core.keys import canonical_json, derivation_key, digest_rows, tree_key


def test_canonical_json_sorts_and_compacts():
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'


def test_derivation_key_covers_recipe_version_params_inputs():
    base = derivation_key("calibration", 1, {"first": 500}, {"images": "aa"})
    assert len(base) == 32 and int(base, 16) >= 0
    assert base == derivation_key("calibration", 1, {"first": 500}, {"images": "aa"})
    assert base != derivation_key("calibration", 2, {"first": 500}, {"images": "aa"})
    assert base != derivation_key("calibration", 1, {"first": 501}, {"images": "aa"})
    assert base != derivation_key("calibration", 1, {"first": 500}, {"images": "ab"})
    assert base != derivation_key("select", 1, {"first": 500}, {"images": "aa"})


def test_digest_depends_on_every_row_field():
    rows = [("a.JPEG", 10, "x" * 32)]
    assert digest_rows(rows) != digest_rows([("b.JPEG", 10, "x" * 32)])
    assert digest_rows(rows) != digest_rows([("a.JPEG", 11, "x" * 32)])


def test_tree_key_is_location_independent(tmp_path):
    for root in (tmp_path / "one", tmp_path / "two"):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "f.txt").write_text("hello")
    assert tree_key(tmp_path / "one") == tree_key(tmp_path / "two")
    (tmp_path / "two" / "sub" / "f.txt").write_text("hellp")
    assert tree_key(tmp_path / "one") != tree_key(tmp_path / "two")


def test_a_field_added_later_stays_out_of_the_key_only_at_its_default():
    from typing import ClassVar

    from dataset_registry.recipes import Params

    class Before(Params):
        width: int = 8

    class After(Params):
        added_later: ClassVar[frozenset[str]] = frozenset({"strict"})
        width: int = 8
        strict: bool = True

    def key(params: Params) -> str:
        return derivation_key("r", 1, params.keyed(), {})

    assert key(After()) == key(Before())
    assert After().keyed() == {"width": 8}
    assert key(After(strict=False)) != key(Before())
    assert After(strict=False).keyed() == {"width": 8, "strict": False}
    assert key(After(width=9)) == key(Before(width=9))
