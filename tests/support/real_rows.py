"""Small frames made of real Online Retail rows, in each file's own schema, for cleaning tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

II_COLUMNS = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]
V1_COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]

# fmt: off
# Online Retail II, 2009-2010 (raw export): each row illustrates one rule.
II_ROWS = {
    "kept": ["489434", "85048", "15CM CHRISTMAS GLASS BALL 20 LIGHTS", 12, "2009-12-01 07:45:00", 6.95, 13085.0, "United Kingdom"],
    "kept_2": ["489434", "79323P", "PINK CHERRY LIGHTS", 12, "2009-12-01 07:45:00", 6.75, 13085.0, "United Kingdom"],
    "cancelled_invoice": ["C489449", "22087", "PAPER BUNTING WHITE LACE", -12, "2009-12-01 10:33:00", 2.95, 16321.0, "Australia"],
    "non_product_code": ["489439", "POST", "POSTAGE", 3, "2009-12-01 09:28:00", 18.0, 12682.0, "France"],
    "return_or_zero_quantity": ["489464", "21733", "85123a mixed", -96, "2009-12-01 10:52:00", 0.0, np.nan, "United Kingdom"],
    "guest_checkout": ["489525", "85226C", "BLUE PULL BACK RACING CAR", 1, "2009-12-01 11:49:00", 0.55, np.nan, "United Kingdom"],
    "extreme_quantity": ["490018", "21967", "PACK OF 12 SKULL TISSUES", 5184, "2009-12-03 12:31:00", 0.25, 17940.0, "United Kingdom"],
    "accounting_adjustment": ["A506401", "B", "Adjust bad debt", 1, "2010-04-29 13:36:00", -53594.36, np.nan, "United Kingdom"],
    "non_positive_price": ["489825", "22076", "6 RIBBONS EMPIRE  ", 12, "2009-12-02 13:34:00", 0.0, 16126.0, "United Kingdom"],
    "duplicate_source": ["489517", "21913", "VINTAGE SEASIDE JIGSAW PUZZLES", 1, "2009-12-01 11:34:00", 3.75, 16329.0, "United Kingdom"],
    "overlap_source": ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "2010-12-01 08:26:00", 2.55, 17850.0, "United Kingdom"],
}
# Online Retail, 2010-2011 (converted: integer invoices, guests as 0.0, placeholder titles).
V1_ROWS = {
    "cross_file_overlap": [536365, "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "2010-12-01 08:26:00", 2.55, 17850.0, "United Kingdom"],
    "kept_v1": [536520, "20707", "CRAZY DAISY HEART DECORATION", 1, "2010-12-01 12:43:00", 1.25, 14729.0, "United Kingdom"],
    "guest_zero": [536414, "22139", "Missing_Description", 56, "2010-12-01 11:52:00", 0.0, 0.0, "United Kingdom"],
    "kept_later": [581587, "22631", "CIRCUS PARADE LUNCH BOX ", 12, "2011-12-09 12:50:00", 1.95, 12680.0, "France"],
}
# fmt: on


def ii_frame(*names: str) -> pd.DataFrame:
    """Rows of the 2009-2010 export, in its own schema, named from ``II_ROWS``."""
    return pd.DataFrame([II_ROWS[n] for n in names], columns=II_COLUMNS)


def v1_frame(*names: str) -> pd.DataFrame:
    """Rows of the 2010-2011 export, in its own schema, named from ``V1_ROWS``."""
    return pd.DataFrame([V1_ROWS[n] for n in names], columns=V1_COLUMNS)


def write_online_retail(folder: Path, ii: pd.DataFrame, v1: pd.DataFrame) -> Path:
    """Write a two-file Online Retail folder like the bundled one."""
    from ml.data.sources import ONLINE_RETAIL_FILES

    folder.mkdir(parents=True, exist_ok=True)
    ii.to_parquet(folder / ONLINE_RETAIL_FILES[0], index=False)
    v1.to_parquet(folder / ONLINE_RETAIL_FILES[1], index=False)
    return folder
