"""Loaders for the public log formats, on small files written by the tests themselves."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from recs.datasets import (
    ColumnMap,
    DatasetError,
    iter_globo,
    load,
    read_globo,
    read_session_tsv,
    sort_by_time,
)
from schemas.events import Interaction, decode_interaction, decode_item

DAY_S = 86_400
T0 = 1_400_000_000  # 2014-05-13T16:53:20Z


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def ml_item_row(item: int, title: str, genres: set[int]) -> str:
    flags = "|".join("1" if g in genres else "0" for g in range(19))
    return f"{item}|{title}|01-Jan-1995||http://example.invalid/{item}|{flags}\n"


# --- MovieLens 100K ------------------------------------------------------------------------------

@pytest.fixture
def ml_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ml"
    write(folder / "u.data", "".join([
        f"7\t100\t4\t{T0 + 50}\n",
        f"3\t200\t5\t{T0}\n",
        f"7\t200\t1\t{T0}\n",           # tie with line 2: file order must survive the sort
        f"3\t100\t3\t{T0 + DAY_S}\n",   # next day: a new session
    ]))
    write(folder / "u.item", ml_item_row(100, "Amélie (2001)", {5, 14})
          + ml_item_row(200, "Heat (1995)", {1, 6, 16})
          + ml_item_row(300, "Never Rated (1990)", {8}), encoding="latin-1")
    return folder


def test_ml100k_events_are_time_sorted_and_stable(ml_dir: Path) -> None:
    data = load("ml100k", ml_dir)
    assert data.name == "ml100k"
    assert [e.event_id for e in data.events] == ["ml100k:2", "ml100k:3", "ml100k:1", "ml100k:4"]
    first = data.events[0]
    assert (first.type, first.user_id, first.item_id, first.value, first.ts) == (
        "rating", "3", "200", 5.0, T0 * 1000)
    assert first.session_id == "3:2014-05-13"
    assert data.events[-1].session_id == "3:2014-05-14"
    for e in data.events:
        assert decode_interaction(e.to_json()) == e


def test_ml100k_items_title_latin1_and_first_genre(ml_dir: Path) -> None:
    items = {i.item_id: i for i in load("ml100k", ml_dir).items}
    assert set(items) == {"100", "200"}  # item 300 is never rated
    assert items["100"].title == "Amélie (2001)"
    assert items["100"].category == "Comedy"
    assert items["100"].tags == ("Comedy", "Romance")
    assert items["200"].category == "Action"
    assert items["200"].ts == T0 * 1000  # stamped with the first event: published before it
    assert decode_item(items["200"].to_json()) == items["200"]


def test_ml100k_accepts_the_data_file_itself(ml_dir: Path) -> None:
    assert len(load("ml100k", ml_dir / "u.data").events) == 4


def test_ml100k_missing_folder_names_path_and_expected_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as err:
        load("ml100k", missing)
    assert str(missing) in str(err.value) and "u.data" in str(err.value)
    assert err.value.path == missing


def test_ml100k_folder_without_u_data(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"holds no MovieLens 100K u\.data"):
        load("ml100k", tmp_path)


@pytest.mark.parametrize(("row", "line", "value", "needle"), [
    (f"1\t2\tfive\t{T0}", 2, "five", "column rating: expected a number"),
    ("1\t2\t3", 2, None, "expected 4 columns"),
    (f"1\t2\t3\t{T0}.5", 2, f"{T0}.5", "column timestamp: expected an integer"),
    (f"1\t2\t3\t{T0 * 1000}", 2, T0 * 1_000_000, "is the unit really unix seconds"),
    (f"1\t2\t42\t{T0}", 2, "42", "expected 0..10"),
    (f"\t2\t3\t{T0}", 2, "", "column user: expected a non-empty value"),
])
def test_ml100k_bad_rows_name_file_line_and_value(tmp_path: Path, row: str, line: int,
                                                  value: object, needle: str) -> None:
    path = write(tmp_path / "u.data", f"1\t1\t3\t{T0}\n{row}\n")
    with pytest.raises(DatasetError) as err:
        load("ml100k", tmp_path)
    assert err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert needle in str(err.value)
    if value is not None:
        assert err.value.value == value


def test_ml100k_bad_item_genre_flag(tmp_path: Path) -> None:
    write(tmp_path / "u.data", f"1\t1\t3\t{T0}\n")
    path = write(tmp_path / "u.item", ml_item_row(1, "X", {1}).replace("|1|", "|y|", 1))
    with pytest.raises(DatasetError) as err:
        load("ml100k", tmp_path)
    assert (err.value.path, err.value.line, err.value.value) == (path, 1, "y")


# --- Diginetica ----------------------------------------------------------------------------------

VIEWS_HEADER = "session_id;user_id;item_id;timeframe;eventdate\n"
PURCHASES_HEADER = "sessionId;userId;timeframe;eventdate;ordernumber;itemId\n"
MIDNIGHT_2016_05_09 = 1_462_752_000_000


@pytest.fixture
def digi_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "digi"
    write(folder / "train-item-views.csv", VIEWS_HEADER
          + "1;NA;81766;526309;2016-05-09\n"
          + "1;NA;31331;1031018;2016-05-09\n"
          + "2;77;31331;5000;2016-05-09\n")
    write(folder / "train-purchases.csv", PURCHASES_HEADER
          + "1;NA;1100000;2016-05-09;555;31331\n"
          + "9;12;100;2016-05-08;556;99999\n")   # a session whose views were not loaded
    write(folder / "product-categories.csv", "itemId;categoryId\n81766;1096\n31331;7\n5;8\n")
    return folder


def test_diginetica_views_purchases_and_categories(digi_dir: Path) -> None:
    data = load("diginetica", digi_dir)
    assert [(e.type, e.session_id, e.item_id) for e in data.events] == [
        ("view", "2", "31331"), ("view", "1", "81766"), ("view", "1", "31331"),
        ("purchase", "1", "31331")]
    assert data.events[0].user_id == "77"
    assert data.events[1].user_id == "s:1"  # NA: the session stands in for the user
    assert data.events[1].ts == MIDNIGHT_2016_05_09 + 526309
    assert data.events[1].event_id == "diginetica:views:2"
    assert data.events[3].event_id == "diginetica:purchases:2"
    assert data.events[3].context == {"order": "555"}
    assert {(i.item_id, i.category) for i in data.items} == {("81766", "1096"), ("31331", "7")}
    for e in data.events:
        assert decode_interaction(e.to_json()) == e


def test_diginetica_session_keeps_one_user_after_login(tmp_path: Path) -> None:
    write(tmp_path / "train-item-views.csv", VIEWS_HEADER
          + "4;NA;10;100;2016-05-09\n4;NA;11;200;2016-05-09\n4;31;12;300;2016-05-09\n")
    write(tmp_path / "train-purchases.csv", PURCHASES_HEADER + "4;NA;400;2016-05-09;1;12\n")
    data = load("diginetica", tmp_path)
    assert [e.user_id for e in data.events] == ["31", "31", "31", "31"]


def test_diginetica_sample_file_name_is_found(tmp_path: Path) -> None:
    write(tmp_path / "sample_train-item-views.csv", VIEWS_HEADER + "1;NA;5;1;2016-05-09\n")
    assert len(load("diginetica", tmp_path).events) == 1


def test_diginetica_wrong_header_names_line_one(tmp_path: Path) -> None:
    path = write(tmp_path / "train-item-views.csv", "sessionId,itemId\n1,2\n")
    with pytest.raises(DatasetError) as err:
        load("diginetica", tmp_path)
    assert (err.value.path, err.value.line, err.value.value) == (path, 1, "sessionId,itemId")
    assert "session_id;user_id;item_id;timeframe;eventdate" in str(err.value)


def test_diginetica_bad_date_names_value(tmp_path: Path) -> None:
    write(tmp_path / "train-item-views.csv",
          VIEWS_HEADER + "1;NA;5;1;2016-05-09\n1;NA;6;2;09/05/2016\n")
    with pytest.raises(DatasetError, match=r"train-item-views.csv:3: column eventdate") as err:
        load("diginetica", tmp_path)
    assert err.value.value == "09/05/2016"


# --- session-rec TSV (rsc15) ---------------------------------------------------------------------

TSV_HEADER = "SessionId\tItemId\tTime\n"


@pytest.fixture
def rsc_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rsc"
    write(folder / "clicks-100k_train_full.txt", TSV_HEADER
          + f"3\t214716935\t{T0}.94\n3\t214832672\t{T0 + 60}.318\n4\t214716935\t{T0 + 30}\n")
    write(folder / "clicks-100k_test.txt", TSV_HEADER
          + f"9\t214716935\t{T0 + DAY_S}.5\n9\t214832672\t{T0 + DAY_S + 5}.0\n")
    return folder


def test_rsc15_train_test_split(rsc_dir: Path) -> None:
    data = load("rsc15", rsc_dir)
    assert [e.ts for e in data.events] == sorted(e.ts for e in data.events)
    assert data.events[0].ts == T0 * 1000 + 940
    assert data.events[0].user_id == "s:3" and data.events[0].type == "view"
    assert data.events[0].event_id == "rsc15:train:2"
    assert data.test_sessions == frozenset({"9"})
    assert data.test_start_ts == (T0 + DAY_S) * 1000 + 500
    assert [e.event_id for e in data.test_events()] == ["rsc15:test:2", "rsc15:test:3"]
    assert len(data.train_events()) == 3
    assert all(e.ts < data.test_start_ts for e in data.train_events())


def test_rsc15_single_file_has_no_split(rsc_dir: Path) -> None:
    data = load("rsc15", rsc_dir / "clicks-100k_test.txt")
    assert len(data.events) == 2 and data.test_start_ts is None
    assert data.train_events() == data.events and data.test_events() == []


def test_rsc15_folder_without_test_file(tmp_path: Path) -> None:
    write(tmp_path / "x_train_full.txt", TSV_HEADER)
    with pytest.raises(DatasetError, match=r"holds no session-rec test file \*_test.txt"):
        load("rsc15", tmp_path)


def test_session_tsv_bad_time(tmp_path: Path) -> None:
    path = write(tmp_path / "a_test.txt", TSV_HEADER + "1\t2\tyesterday\n")
    with pytest.raises(DatasetError) as err:
        list(read_session_tsv(path))
    assert (err.value.line, err.value.value) == (2, "yesterday")
    assert "column Time: expected a number" in str(err.value)


# --- Globo.com news ------------------------------------------------------------------------------

GLOBO_HEADER = ("user_id,session_id,session_start,session_size,click_article_id,click_timestamp,"
                "click_environment,click_deviceGroup,click_os,click_country,click_region,"
                "click_referrer_type\n")


def globo_rows(n: int, start_ms: int = T0 * 1000) -> str:
    rows = []
    for i in range(n):
        user, session = i // 3, 1_000 + i // 3
        # each user's clicks come together, later users earlier in time: the file is not sorted
        ts = start_ms + (n - user) * 60_000 + (i % 3) * 1000
        rows.append(f"{user},{session},{start_ms},3,{500 + i % 7},{ts},4,{1 + i % 3},17,1,"
                    f"{20 + i % 2},2\n")
    return "".join(rows)


def test_globo_gzip_clicks_with_context(tmp_path: Path) -> None:
    path = tmp_path / "globo_clicks_all.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(GLOBO_HEADER + globo_rows(30))
    data = load("globo", tmp_path)
    assert len(data.events) == 30
    assert [e.ts for e in data.events] == sorted(e.ts for e in data.events)
    first = data.events[0]
    assert first.type == "click" and first.user_id == "9" and first.session_id == "1009"
    assert first.context == {"device": "1", "os": "17", "country": "1", "region": "21",
                             "referrer": "2"}
    assert first.event_id == "globo:29"
    for e in data.events:
        assert decode_interaction(e.to_json()) == e


def test_globo_streams_lazily_with_limit(tmp_path: Path) -> None:
    path = tmp_path / "clicks.csv"
    write(path, GLOBO_HEADER + globo_rows(10) + "broken,row\n")
    stream = read_globo(path)
    assert isinstance(next(stream), Interaction)  # a generator: nothing read past what is asked
    assert len(list(itertools.islice(stream, 4))) == 4
    assert len(list(read_globo(path, limit=10))) == 10
    assert len(load("globo", path, limit=10).events) == 10
    with pytest.raises(DatasetError) as err:
        list(read_globo(path))
    assert err.value.line == 12 and "expected 12 columns" in str(err.value)


def test_globo_hourly_folder(tmp_path: Path) -> None:
    for hour in range(2):
        write(tmp_path / "clicks" / f"clicks_hour_{hour:03d}.csv",
              GLOBO_HEADER + globo_rows(3, (T0 + hour * 3600) * 1000))
    events = list(iter_globo(tmp_path))
    assert [e.event_id for e in events][:4] == [
        "globo:clicks_hour_000:2", "globo:clicks_hour_000:3", "globo:clicks_hour_000:4",
        "globo:clicks_hour_001:2"]
    assert len(list(iter_globo(tmp_path, limit=4))) == 4


def test_globo_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"globo_clicks_all\.csv\.gz"):
        load("globo", tmp_path)


# --- generic CSV ---------------------------------------------------------------------------------

def test_csv_with_column_map_and_units(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.csv", "when,who,what,action,stars\n"
                 f"{T0 + 10},alice,sku1,view,\n"
                 f"{T0},bob,sku2,purchase,\n"
                 f"{T0 + 20},alice,sku2,rating,4.5\n")
    data = load("csv", path, columns="user=who,item=what,ts=when,type=action,value=stars")
    assert [(e.user_id, e.type, e.ts) for e in data.events] == [
        ("bob", "purchase", T0 * 1000), ("alice", "view", (T0 + 10) * 1000),
        ("alice", "rating", (T0 + 20) * 1000)]
    assert data.events[2].value == 4.5
    assert data.events[1].session_id == "alice:2014-05-13"
    assert data.events[1].event_id == "csv:shop:2"
    for e in data.events:
        assert decode_interaction(e.to_json()) == e


def test_csv_context_columns_and_type_map(tmp_path: Path) -> None:
    path = write(tmp_path / "export.csv", "ts,user,sku,kind,dev,geo,ref\n"
                 f"{T0},alice,sku1,pageview,mobile,BR,search\n"
                 f"{T0 + 1},alice,sku2,transaction,mobile,BR,search\n"
                 f"{T0 + 2},bob,sku1,addtocart,,DE,\n")
    data = load("csv", path, columns="user=user,item=sku,ts=ts,type=kind,device=dev,"
                "country=geo,referrer=ref",
                type_map="pageview=view,addtocart=add_to_cart,transaction=purchase")
    assert [e.type for e in data.events] == ["view", "purchase", "add_to_cart"]
    assert data.events[0].context == {"device": "mobile", "country": "BR",
                                      "referrer": "search"}
    assert data.events[2].context == {"country": "DE"}  # empty cells are left out
    for e in data.events:
        assert decode_interaction(e.to_json()) == e
    with pytest.raises(DatasetError, match=r"column kind: .*or a type map key") as err:
        load("csv", path, columns="user=user,item=sku,ts=ts,type=kind",
             type_map="pageview=view")
    assert (err.value.line, err.value.value) == (3, "transaction")
    with pytest.raises(ValueError, match=r"type map: 'x' maps to 'like'"):
        load("csv", path, columns="user=user,item=sku,ts=ts", type_map="x=like")


@pytest.mark.parametrize(("unit", "raw", "expected"), [
    ("ms", str(T0 * 1000 + 5), T0 * 1000 + 5),
    ("us", str(T0 * 1_000_000 + 5000), T0 * 1000 + 5),
    ("iso", "2014-05-13T16:53:20", T0 * 1000),
    ("iso", "2014-05-13T18:53:20+02:00", T0 * 1000),
])
def test_csv_timestamp_units(tmp_path: Path, unit: str, raw: str, expected: int) -> None:
    path = write(tmp_path / "t.tsv", f"u\ti\tt\tsess\nx\ty\t{raw}\tS1\n")
    cmap = ColumnMap(user="u", item="i", ts="t", session="sess")
    [event] = load("csv", path, columns=cmap, ts_unit=unit, delimiter="\t").events
    assert event.ts == expected and event.session_id == "S1" and event.type == "view"


def test_csv_errors_name_line_and_value(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", f"u,i,t,k\na,b,{T0},view\na,b,{T0},like\n")
    with pytest.raises(DatasetError) as err:
        load("csv", path, columns="user=u,item=i,ts=t,type=k")
    assert (err.value.line, err.value.value) == (3, "like")
    with pytest.raises(DatasetError, match="header: no column 'time' for ts") as err:
        load("csv", path, columns="user=u,item=i,ts=time")
    assert err.value.line == 1
    with pytest.raises(DatasetError, match=r"e.csv:2: column t: .*is the unit really ms"):
        load("csv", path, columns="user=u,item=i,ts=t", ts_unit="ms")


@pytest.mark.parametrize("spec", ["user=u,item=i", "user=u,item=i,ts=t,colour=c", "user"])
def test_column_map_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="column map"):
        ColumnMap.parse(spec)


# --- common --------------------------------------------------------------------------------------

def test_sort_by_time_is_stable() -> None:
    events = [Interaction(f"e{i}", "view", "u", "s", ts, "i")
              for i, ts in enumerate([3, 1, 2, 1, 3])]
    assert [e.event_id for e in sort_by_time(events)] == ["e1", "e3", "e2", "e0", "e4"]


def test_unknown_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected one of"):
        load("netflix", tmp_path)
