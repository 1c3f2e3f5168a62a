"""--device and --bbox-crs values are checked before any work, in one sentence."""

import pytest
import torch

from torchgeo_simclr.inference.device import resolve_device
from torchgeo_simclr.lonlat import parse_bbox_crs


@pytest.mark.parametrize("value", ["gpu", "cuda:x", "tpu"])
def test_a_device_that_is_no_device(value: str) -> None:
    with pytest.raises(ValueError, match=f"--device '{value}' is not a device") as e:
        resolve_device(value)
    assert "pass auto, cpu, cuda, cuda:N or mps" in str(e.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_gpu_this_machine_lacks() -> None:
    with pytest.raises(ValueError, match="--device 'cuda:1' asks for CUDA") as e:
        resolve_device("cuda:1")
    assert "pass --device cpu" in str(e.value)


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cpu"
    if torch.cuda.is_available():
        expected = "cuda"
    elif torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("value", ["foo", "EPSG:99999"])
def test_a_bbox_crs_pyproj_does_not_know(value: str) -> None:
    with pytest.raises(ValueError, match=f"--bbox-crs '{value}' is not a CRS"):
        parse_bbox_crs(value)


def test_bbox_crs_in_any_form_pyproj_reads() -> None:
    assert parse_bbox_crs("EPSG:32610").to_epsg() == 32610
    assert parse_bbox_crs("+proj=longlat +datum=WGS84").is_geographic
