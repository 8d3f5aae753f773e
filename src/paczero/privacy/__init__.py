"""Privacy mathematics: pure functions of numbers (paczero-notes §4, §6)."""

from paczero.privacy.bounds import dp_epsilon_for_mi, dp_posterior_bound, mi_for_dp_epsilon, mia_posterior_bound
from paczero.privacy.channel import binary_entropy, channel_mi, sigma_for_mi
from paczero.privacy.posterior import agreeing_sign, gaussian_update, q_plus, uniform_log_posterior

__all__ = [
    "agreeing_sign",
    "binary_entropy",
    "channel_mi",
    "dp_epsilon_for_mi",
    "dp_posterior_bound",
    "gaussian_update",
    "mi_for_dp_epsilon",
    "mia_posterior_bound",
    "q_plus",
    "sigma_for_mi",
    "uniform_log_posterior",
]
