import numpy as np
import pytest
import torch

from gymnast_world_model.diffusion import PREDICTIONS, add_noise, alpha_sigma, ddim_sample, to_x0_eps
from gymnast_world_model.evaluate import derangement


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_the_training_target_converts_back_to_the_clean_sample_and_the_noise(prediction):
    torch.manual_seed(0)
    x0, noise = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    t = torch.tensor([0.1, 0.4, 0.7, 0.95])
    x_t, target = add_noise(x0, t, noise, prediction)
    x0_back, noise_back = to_x0_eps(target, x_t, t, prediction)
    torch.testing.assert_close(x0_back, x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(noise_back, noise, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("steps", [1, 4])
def test_sampling_with_a_perfect_model_lands_on_the_data(prediction, steps):
    # With a single data point the ideal model is known in closed form for every target.
    x0 = torch.tensor([[0.5, -1.5, 2.0]])

    def perfect(x, t):
        # The noise that x holds at level t, then the target for that (x0, noise) pair.
        alpha, sigma = (a[:, None] for a in alpha_sigma(t))
        return add_noise(x0, t, (x - alpha * x0) / sigma, prediction)[1]

    sample = ddim_sample(perfect, torch.randn(1, 3), steps, prediction)
    torch.testing.assert_close(sample, x0, atol=1e-4, rtol=1e-4)


def test_unknown_prediction_is_rejected():
    with pytest.raises(ValueError, match="prediction must be one of"):
        ddim_sample(lambda x, t: x, torch.zeros(1, 2), 4, "epsilon")


def test_shuffled_actions_always_come_from_another_episode():
    rng = np.random.default_rng(0)
    for n in (2, 3, 36):
        order = derangement(n, rng)
        assert sorted(order) == list(range(n))
        assert (order != np.arange(n)).all()
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1, rng)
