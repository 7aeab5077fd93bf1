"""The price list lives in ``services.kit.prices`` (the job services estimate with it too)."""

from services.kit.prices import KIND_NAMES, MAX_CREDITS, Price, PriceList, Usage

__all__ = ["KIND_NAMES", "MAX_CREDITS", "Price", "PriceList", "Usage"]
