"""The prompt rule (spec §2): nearest code per position, positions by distance, first 77 distinct codes, zero rows."""

import torch

from osdface.models import Codebook, select_unique_codes, squared_distances


def reference_rule(dist_1: torch.Tensor, num_tokens: int) -> list[int]:
    """The rule as the spec words it, one image, a plain Python loop (the release's algorithm)."""
    min_d, nearest = dist_1.min(dim=-1)
    order = sorted(range(len(min_d)), key=lambda i: (min_d[i].item(), i))
    kept = []
    for pos in order:
        code = nearest[pos].item()
        if code not in kept:
            kept.append(code)
        if len(kept) == num_tokens:
            break
    return kept


def test_hand_made_codebook_ordering_uniqueness_and_padding():
    # 1-d codes at 0, 10, 20, 30; six positions. Distances to the nearest code:
    #   pos0 = 10.4 → code 1 (0.16), pos1 = 29 → code 3 (1), pos2 = 0.1 → code 0 (0.01),
    #   pos3 = 10.0 → code 1 (0), pos4 = 19.5 → code 2 (0.25), pos5 = 0.0 → code 0 (0)
    cb = Codebook(4, 1)
    with torch.no_grad():
        cb.embedding.weight.copy_(torch.tensor([[0.0], [10.0], [20.0], [30.0]]))
    z = torch.tensor([10.4, 29.0, 0.1, 10.0, 19.5, 0.0]).view(1, 1, 2, 3)
    tokens = cb.prompt_tokens(z, num_tokens=6)
    # by distance: pos3 (code 1, 0) and pos5 (code 0, 0) tie → row-major order keeps pos3 first; then pos2 (code 0,
    # already kept), pos0 (code 1, kept), pos4 (code 2), pos1 (code 3)
    assert tokens.indices.tolist() == [[1, 0, 2, 3, -1, -1]]
    assert tokens.valid.tolist() == [[True, True, True, True, False, False]]
    assert tokens.embeddings[0, :4, 0].tolist() == [10.0, 0.0, 20.0, 30.0]
    assert torch.all(tokens.embeddings[0, 4:] == 0)


def test_truncates_at_num_tokens():
    cb = Codebook(8, 1)
    with torch.no_grad():
        cb.embedding.weight.copy_(torch.arange(8.0).view(8, 1) * 10)
    # position i sits at distance 0.1*i from code i
    z = (torch.arange(8.0) * 10 + torch.arange(8.0) * 0.1).view(1, 1, 1, 8)
    assert cb.prompt_tokens(z, num_tokens=3).indices.tolist() == [[0, 1, 2]]


def test_matches_reference_loop_on_random_cases():
    g = torch.Generator().manual_seed(0)
    for n_codes, dim, hw, t in [(1024, 16, 16, 77), (50, 8, 4, 77), (300, 32, 8, 77), (64, 4, 16, 10)]:
        dist = squared_distances(torch.randn(3, hw * hw, dim, generator=g), torch.randn(n_codes, dim, generator=g))
        idx, valid = select_unique_codes(dist, t)
        for b in range(3):
            ref = reference_rule(dist[b], t)
            assert idx[b, : len(ref)].tolist() == ref
            assert valid[b].sum().item() == len(ref)
            assert torch.all(idx[b, len(ref):] == -1)


def test_batch_equals_single_images():
    torch.manual_seed(1)
    cb = Codebook(128, 16)
    z = torch.randn(5, 16, 8, 8)
    batched = cb.prompt_tokens(z, 77)
    for i in range(5):
        single = cb.prompt_tokens(z[i : i + 1], 77)
        assert torch.equal(batched.indices[i], single.indices[0])
        assert torch.equal(batched.embeddings[i], single.embeddings[0])


def test_distance_form_equals_direct_norm():
    torch.manual_seed(2)
    z, e = torch.randn(2, 10, 6, dtype=torch.float64), torch.randn(7, 6, dtype=torch.float64)
    direct = ((z[:, :, None, :] - e[None, None]) ** 2).sum(-1)
    assert torch.allclose(squared_distances(z, e), direct, atol=1e-10)


def test_nearest_quantises_to_codes():
    torch.manual_seed(3)
    cb = Codebook(32, 8)
    idx, zq = cb.nearest(torch.randn(2, 8, 4, 4))
    assert idx.shape == (2, 4, 4) and zq.shape == (2, 8, 4, 4)
    assert torch.equal(zq[1, :, 2, 3], cb.weight[idx[1, 2, 3]])
