"""recipes/regions.py: a file several tasks write, hashed region by region in plan order."""


def test_region_hasher_hashes_regions_in_plan_order_whatever_the_arrival(tmp_path):
    from dataset_registry.artifact.output import Output
    from dataset_registry.core.keys import hash_file
    from dataset_registry.recipes.regions import RegionHasher

    out = Output(str(tmp_path), "finish")
    data = bytes(range(256)) * 40_000  # 10 MB, three regions
    (tmp_path / "train.rec").write_bytes(data)
    cuts = [(0, 3_000_001), (3_000_001, 4_000_000), (7_000_001, len(data) - 7_000_001)]
    hasher = RegionHasher(out, "train.rec", 3)
    for i in (2, 0, 1):
        hasher(i, {"in_place": True, "start": cuts[i][0], "size": cuts[i][1]})
    assert out._hashed["train.rec"] == (len(data), hash_file(tmp_path / "train.rec"))

    gave_up = Output(str(tmp_path), "other")
    hasher = RegionHasher(gave_up, "train.rec", 3)
    for i in (0, 1, 2):
        hasher(i, {"in_place": i != 1, "start": cuts[i][0], "size": cuts[i][1]})
    assert gave_up._hashed == {}  # a region written elsewhere: finish hashes the file
    out.close()
    gave_up.close()
