"""Column names shared by every dataset the platform reads or writes.

One place for the names (as Microsoft Recommenders does): readers, cleaners, models, metrics and
Great Expectations suites all refer to these constants, never to string literals of their own.
"""

USER = "user_id"
ITEM = "item_id"
TIMESTAMP = "timestamp"
QUANTITY = "quantity"
PRICE = "price"
EVENT_TYPE = "event_type"
WEIGHT = "weight"  # implicit-feedback confidence of one interaction
ORDER = "order_id"
EVENT_DATE = "event_date"  # partition key of the lake (YYYY-MM-DD)

TITLE = "title"
CATEGORY = "category"
DESCRIPTION = "description"
FIRST_SEEN = "first_seen"
LAST_SEEN = "last_seen"
LISTED_AT = "listed_at"  # when the shop listed the item (optional in a shop catalog)
POPULARITY = "popularity"  # distinct buyers in the data the catalog was built from
N_LINES = "n_lines"

SOURCE = "source"  # which input file (or "synthetic") a row came from
SOURCE_ROW = "source_row"  # 0-based row number inside that input file
REASON = "reason"  # quarantine reason code

SCORE = "score"
RANK = "rank"
MODEL = "model"

INTERACTION_COLUMNS = [USER, ITEM, TIMESTAMP, QUANTITY, PRICE, WEIGHT, ORDER, SOURCE, SOURCE_ROW]
CATALOG_COLUMNS = [ITEM, TITLE, PRICE, FIRST_SEEN, LAST_SEEN, POPULARITY, N_LINES]
# quarantine rows keep every normalized input field (ml.data.sources.RAW_COLUMNS) plus REASON
