"""The ALiBi positional scheme: glmlab's positional contract plus the paper's definition."""

import torch

from glmlab.model.build import build_model
from glmlab.objective.sample import build_glm_sample
from glmlab.plugin.registry import get_registry
from glmlab.testing import PositionalSchemeContract
from glmlab.testing.samples import tiny_config


class TestAlibiContract(PositionalSchemeContract):
    name = "alibi"


class TestAlibiPinnedContract(PositionalSchemeContract):
    name = "alibi"
    options = {"pin_part_b": True}


def alibi(n_heads: int, **options: bool):
    settings = {"dim": 8 * n_heads, "n_heads": n_heads, "head_dim": 8, "max_positions": 64}
    return get_registry().create("positional", "alibi", settings=settings, **options)


def test_slopes_are_the_papers_geometric_sequence() -> None:
    # Press et al.: for 8 heads, 1/2, 1/4, ..., 1/256.
    torch.testing.assert_close(alibi(8).slopes, torch.tensor([2.0**-i for i in range(1, 9)]))


def test_bias_is_minus_slope_times_1d_distance() -> None:
    # The paper's GLM example: x1..x6, spans [x3] and [x5 x6], Part B in shuffled order.
    sample = build_glm_sample(
        [1, 2, 3, 4, 5, 6], [(2, 3), (4, 6)], mask_id=90, sop_id=91, eop_id=92, order=[1, 0]
    )
    pos = torch.from_numpy(sample.position_ids)[None]
    for pin, one_d in [(False, pos[0, 0] + pos[0, 1]), (True, pos[0, 0])]:
        scheme = alibi(4, pin_part_b=pin)
        bias = scheme.attention_bias(pos)
        assert bias.shape == (1, 4, len(sample), len(sample)) and bias.dtype == torch.float32
        for h in range(4):
            for i in range(len(sample)):
                for j in range(len(sample)):
                    want = -(2.0 ** (-8 * (h + 1) / 4)) * abs(int(one_d[i]) - int(one_d[j]))
                    assert bias[0, h, i, j].item() == want


def test_no_embedding_no_rotation_no_parameters() -> None:
    scheme = alibi(4)
    q, k = torch.randn(2, 1, 4, 5, 8).unbind(0)
    pos = torch.zeros(1, 2, 5, dtype=torch.long)
    assert scheme.embed(pos) is None
    assert scheme.rotate(q, k, pos) == (q, k)
    assert list(scheme.parameters()) == [] and "slopes" not in scheme.state_dict()


def test_auto_attention_picks_a_backend_that_takes_the_bias() -> None:
    model = build_model(tiny_config(), norm_layout="pre_ln", positional="alibi", attention="auto")
    assert getattr(model.attention, "supports_bias", False)
