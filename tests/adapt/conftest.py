import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small models on a shared CPU: one thread is faster than several contending for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
