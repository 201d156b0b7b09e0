"""Object metrics (SPEC §2 "Object mass"): exact small cases for each metric, objects stored by
``collect`` where the game has an annotator, and the Objects table of ``evaluate``.

The Ms. Pac-Man RAM annotator lives elsewhere; these tests register a fake one for the game."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from vmask_live.errors import DatasetError
from vmask_live.object_metrics import (
    ACTORS,
    category_flips,
    decode_objects,
    object_scores,
    region_areas,
    region_masks,
    shuffle_partners,
    static_prior_maps,
    uniform_maps,
)
from vmask_live.objects import ANNOTATORS, GameObject

CATS = ["player", "ghost", "hud"]


def _rows(*states: list[tuple[float, ...]], m: int = 4) -> np.ndarray:
    """Stored object rows ``(B, m, 6)`` from each state's ``(category index, id, x0, y0, x1, y1)`` tuples."""
    rows = np.full((len(states), m, 6), np.nan, np.float32)
    for i, objs in enumerate(states):
        for j, o in enumerate(objs):
            rows[i, j] = o
    return rows


def test_rows_decode_to_game_objects_skipping_padding():
    rows = _rows([(1, 2, 0, 0, 3, 3), (0, 0, 4, 4, 6, 6)])
    assert decode_objects(rows[0], CATS) == [
        GameObject("ghost", 2, (0, 0, 3, 3)),
        GameObject("player", 0, (4, 4, 6, 6)),
    ]


def test_map_equal_to_a_box_scores_all_its_mass_and_the_hud_is_not_an_actor():
    rows = _rows([(0, 0, 2, 2, 4, 4), (2, 0, 0, 6, 8, 8)])
    regions = region_masks(rows, CATS, (8, 8), dilate=0)
    assert regions[ACTORS][0].sum() == 4 and regions["hud"][0].sum() == 16
    assert not (regions[ACTORS][0] & regions["hud"][0]).any()
    maps = regions["player"].float()
    res = object_scores(maps, regions, regions)  # own objects as the "shuffled" ones: score 0
    assert res["actor_mass"] == 100 and res["mass:player"] == 100 and res["mass:hud"] == 0
    assert res["actor_pointing"] == 100 and res["object_score"] == 0
    # a uniform map's mass is the area share
    uni = object_scores(uniform_maps(1, (8, 8)), regions, regions, with_pointing=False)
    assert uni["actor_mass"] == pytest.approx(100 * 4 / 64) and uni["mass:hud"] == pytest.approx(25)
    assert "actor_pointing" not in uni
    assert region_areas(regions)["area:hud"] == pytest.approx(25)


def test_boxes_are_dilated_and_clipped_to_the_frame():
    rows = _rows([(0, 0, 0, 0, 2, 2)])
    mask = region_masks(rows, CATS, (8, 8), dilate=2)["player"][0]
    assert mask.sum() == 16 and mask[:4, :4].all()  # 2x2 box grown by 2 px, cut at the top-left edge


def test_shuffled_control_scores_the_map_against_another_states_objects():
    own = region_masks(_rows([(0, 0, 0, 0, 4, 4)], [(0, 0, 0, 0, 4, 4)]), CATS, (8, 8), dilate=0)
    other = region_masks(_rows([(1, 0, 4, 4, 8, 8)], [(0, 0, 0, 0, 4, 8)]), CATS, (8, 8), dilate=0)
    maps = own["player"].float()
    res = object_scores(maps, own, other)
    # state 0: partner's actor is elsewhere (0%); state 1: partner's box covers the map (100%)
    assert res["actor_mass"] == 100 and res["actor_mass_shuffled"] == 50 and res["object_score"] == 50
    assert res["mass_shuffled:ghost"] == 0 and res["mass_shuffled:player"] == 50
    assert res["actor_pointing_shuffled"] == 50


def test_shuffled_partners_come_from_other_episodes_deterministically():
    episodes = np.array([0, 0, 1, 2, 2, 3])
    pool = np.array([0, 1, 1, 2, 3, 3, 0, 2])
    p = shuffle_partners(episodes, pool, seed=5)
    assert (pool[p] != episodes).all()
    assert (p == shuffle_partners(episodes, pool, seed=5)).all()
    assert any((shuffle_partners(episodes, pool, seed=s) != p).any() for s in range(6, 10))
    with pytest.raises(DatasetError, match="states come from one episode"):
        shuffle_partners(np.array([4]), np.array([4, 4]))


def test_static_prior_is_the_mean_actor_mask_of_other_episodes():
    pool_rows = _rows([(0, 0, 0, 0, 1, 1)], [(1, 0, 1, 0, 2, 1)], [(0, 0, 2, 0, 3, 1)], [(2, 0, 0, 1, 3, 2)])
    pool_actors = region_masks(pool_rows, CATS, (2, 3), dilate=0)[ACTORS]
    pool_episodes = np.array([0, 1, 1, 2])
    prior = static_prior_maps(np.array([1, 5]), pool_episodes, pool_actors)
    # episode 1 sees only episodes 0 and 2: the pixel (0, 0) in one of two states; the hud is no actor
    assert prior[0].tolist() == [[0.5, 0, 0], [0, 0, 0]]
    assert prior[1].tolist() == [[0.25, 0.25, 0.25], [0, 0, 0]]


class _QuadrantAgent(torch.nn.Module):
    """Action 1 while the top-left 2x2 pixels hold anything, else 0; counts its calls."""

    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        lit = x[:, :, :2, :2].flatten(1).sum(1) > 0
        return torch.stack([(~lit).float(), lit.float()], 1)


def test_category_counterfactual_counts_flips_in_one_agent_call():
    x = torch.ones(3, 1, 8, 8)
    actions = torch.tensor([1, 1, 1])
    rows = _rows(
        [(0, 0, 0, 0, 2, 2), (1, 0, 5, 5, 7, 7)],  # player on the lit corner, ghost away
        [(1, 0, 0, 0, 2, 2)],  # ghost on the corner, no player
        [(0, 0, 6, 6, 8, 8), (1, 0, 4, 4, 5, 5)],
    )
    regions = region_masks(rows, CATS, (8, 8), dilate=0)
    agent = _QuadrantAgent()
    flips = category_flips(agent, x, actions, regions, lambda s: torch.zeros(1, *s.shape[1:]))
    assert agent.calls == 1
    assert flips["player"] == {"flip_rate": 50.0, "states": 2}
    assert flips["ghost"] == {"flip_rate": pytest.approx(100 / 3), "states": 3}
    assert flips["hud"] == {"flip_rate": None, "states": 0}


# --- collect and evaluate with a fake Ms. Pac-Man annotator -----------------------------------------


def _fake_annotator(ram: np.ndarray) -> list[GameObject]:
    """Boxes from arbitrary RAM bytes: they move with the game, which is all these tests need."""
    x, y = float(int(ram.astype(np.int64).sum()) % 70), float(ram[16] % 70)  # the sum has frame counters
    return [
        GameObject("player", 0, (x, y, x + 4, y + 4)),
        GameObject("ghost", 0, (y, x, y + 4, x + 4)),
        GameObject("ghost", 1, (10.0, 10.0, 14.0, 14.0)),
        GameObject("hud", 0, (0.0, 76.0, 84.0, 84.0)),
    ]


@pytest.fixture(scope="module")
def pacman(tmp_path_factory):
    """A tiny agent, its explainer, and 240 Ms. Pac-Man states collected with the fake annotator."""
    from vmask_live.dataset import CollectConfig, collect
    from vmask_live.observations import ObsFormat
    from vmask_live.testing import tiny_agent, tiny_explainer

    fmt = ObsFormat((4, 84, 84), "chw")
    agent = tiny_agent(obs_format=fmt, n_actions=9)
    d = tmp_path_factory.mktemp("pacman")
    tiny_explainer(obs_format=fmt, n_actions=9, agent=agent).save(d / "explainer.safetensors")
    try:  # the real annotator registers itself on import: import it first so the fake replaces it
        import vmask_live.atari_objects  # noqa: F401
    except ImportError:
        pass
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ANNOTATORS, "MsPacman", _fake_annotator)
        cfg = CollectConfig(env="MsPacman", out=str(d / "data"), steps=240, n_envs=4, shard_size=100, seed=1)
        # short episodes, so the 80/10/10 split has test states and other episodes to shuffle with
        cfg.env_kwargs = {"max_episode_steps": 20}
        ds = collect(cfg, agent=agent, progress=False)
    return agent, d, ds


def test_collect_stores_each_states_objects(pacman):
    from vmask_live.dataset import MAX_OBJECTS, Dataset

    _, _, ds = pacman
    ds = Dataset(ds.path)
    assert ds.has_objects and ds.object_categories == ["player", "ghost", "hud"]
    rows = ds.get(np.arange(len(ds)), ("objects", "episodes"))["objects"]
    assert rows.shape == (240, MAX_OBJECTS, 6) and rows.dtype == np.float32
    assert (~np.isnan(rows[:, :, 0])).sum(1).tolist() == [4] * 240  # four objects, the rest NaN padding
    objs = decode_objects(rows[7], ds.object_categories)
    assert [o.name for o in objs] == ["player", "ghost 0", "ghost 1", "hud"]
    assert objs[2].box == (10.0, 10.0, 14.0, 14.0)
    assert len(np.unique(rows[:, 0, 2:4], axis=0)) > 1  # the boxes follow the RAM


def test_datasets_without_an_annotator_have_no_objects(tmp_path):
    from vmask_live.dataset import CollectConfig, collect

    ds = collect(CollectConfig(env="Beacon", agent="default:Beacon", out=str(tmp_path), steps=30), progress=False)
    assert not ds.has_objects and ds.object_categories == []
    assert "object_categories" not in json.loads((tmp_path / "manifest.json").read_text())


def test_evaluate_reports_objects_with_shuffled_control_and_priors(pacman, tmp_path):
    from vmask_live.evaluate import STATIC_PRIOR, UNIFORM, EvaluateConfig, evaluate

    agent, d, ds = pacman
    cfg = EvaluateConfig(
        data=str(ds.path),
        explainer=str(d / "explainer.safetensors"),
        methods="visionmask,gradient",
        n=12,
        lle_n=0,
        insertion_steps=4,
        out=str(tmp_path / "eval"),
    )
    report = evaluate(cfg, agent=agent, progress=False).read_text()
    assert "## Objects" in report and "Object score = actor mass − shuffled actor mass" in report
    table = report[report.index("## Objects") :]
    for row in ("visionmask", "gradient", UNIFORM, STATIC_PRIOR):
        assert f"| {row} |" in table
    assert "| Object score ↑ | Actor mass | Actor mass, shuffled | Pointing | Pointing, shuffled |" in table
    assert "Area shares: actors " in table and "flips when one category's boxes are replaced" in table

    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    objects = saved["objects"]
    assert objects["categories"] == ["player", "ghost", "hud"] and objects["settings"]["dilate"] == 2
    vm = saved["results"]["visionmask"]
    assert vm["object_score"] == pytest.approx(vm["actor_mass"] - vm["actor_mass_shuffled"])
    uniform = objects["rows"][UNIFORM]
    assert uniform["actor_mass"] == pytest.approx(objects["areas"]["area:actors"], abs=1e-4)
    assert set(objects["category_flips"]) == {"player", "ghost", "hud"}
    assert objects["category_flips"]["player"]["states"] == 12
    assert saved["resolved"]["key"]["objects"]["categories"] == ["player", "ghost", "hud"]

    with open(tmp_path / "eval" / "results.csv", newline="") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"visionmask", "gradient", UNIFORM, STATIC_PRIOR}
    assert rows[STATIC_PRIOR]["accuracy"] == "" and float(rows["gradient"]["mass:ghost"]) >= 0

    # the cache is reused for the same run and keyed by the object settings
    cached = tmp_path / "eval" / "methods" / "visionmask.json"
    planted = json.loads(cached.read_text())
    assert planted["key"]["objects"]["dilate"] == 2 and planted["key"]["objects"]["hud_categories"] == [
        "hud",
        "power_pill",
        "pill",
    ]
    planted["result"]["object_score"] = 12345.0
    cached.write_text(json.dumps(planted))
    evaluate(cfg, agent=agent, progress=False)
    assert (
        json.loads((tmp_path / "eval" / "results.json").read_text())["results"]["visionmask"]["object_score"] == 12345
    )
    cfg.object_dilate = 0
    evaluate(cfg, agent=agent, progress=False)
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["results"]["visionmask"]["object_score"] != 12345 and saved["objects"]["settings"]["dilate"] == 0
    assert saved["objects"]["areas"]["area:actors"] < objects["areas"]["area:actors"]


def test_evaluate_from_play_replays_states_that_predate_the_annotator(pacman, tmp_path, monkeypatch):
    from vmask_live.evaluate import EvaluateConfig, evaluate

    agent, d, _ = pacman
    cfg = EvaluateConfig(
        env="MsPacman",
        explainer=str(d / "explainer.safetensors"),
        methods="visionmask",
        n=6,
        lle_n=0,
        insertion_steps=2,
        play_steps=60,
        out=str(tmp_path / "eval"),
    )
    import vmask_live.atari_objects  # noqa: F401 - registers the built-in tables now, not on a later lookup

    monkeypatch.delitem(ANNOTATORS, "MsPacman", raising=False)  # the real one, where it exists
    assert "## Objects" not in evaluate(cfg, agent=agent, progress=False).read_text()
    monkeypatch.setitem(ANNOTATORS, "MsPacman", _fake_annotator)
    report = evaluate(cfg, agent=agent, progress=False).read_text()
    assert "## Objects" in report and "| visionmask | " in report[report.index("## Objects") :]
    manifest = json.loads((tmp_path / "eval" / "states" / "manifest.json").read_text())
    assert manifest["object_categories"] == ["player", "ghost", "hud"]
