"""Privacy mathematics: pure functions of numbers (paczero-notes §4, §6).

Nothing here imports the configuration, the models or the mechanisms.
"""

from paczero.privacy.bounds import dp_epsilon_for_mi, dp_posterior_bound, mi_for_dp_epsilon, mia_posterior_bound
from paczero.privacy.bsc import bsc_mi, flip_for_mi, flip_of_sigma, sigma_of_flip
from paczero.privacy.channel import binary_entropy, channel_mi, sigma_for_mi
from paczero.privacy.posterior import agreeing_sign, bit_update, q_plus, uniform_log_posterior
from paczero.privacy.statement import PrivacyStatement

__all__ = [
    "PrivacyStatement",
    "agreeing_sign",
    "binary_entropy",
    "bit_update",
    "bsc_mi",
    "channel_mi",
    "dp_epsilon_for_mi",
    "dp_posterior_bound",
    "flip_for_mi",
    "flip_of_sigma",
    "mi_for_dp_epsilon",
    "mia_posterior_bound",
    "q_plus",
    "sigma_for_mi",
    "sigma_of_flip",
    "uniform_log_posterior",
]
