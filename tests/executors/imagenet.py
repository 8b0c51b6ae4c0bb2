"""What the project checks of every executor beyond the shipped suite: the ImageNet
recipes (calibration, the shipped label folder) give the session's reference digests."""

from __future__ import annotations

from ..buildkit import build_all, every_recipe


class ImageNetReference:
    def test_every_imagenet_recipe_gives_the_reference_bytes(self, executor, synth_small,
                                                             reference_digests, tmp_path):
        reg = every_recipe(tmp_path, synth_small["imagenet-train"], synth_small["imagenet-val"])
        assert build_all(reg, executor=executor) == reference_digests
        assert reg.verify() == {k: [] for k in reg.store.committed()}
