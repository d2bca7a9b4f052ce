"""SUMO .net.xml import: the real Chengdu network and hand-made nets with known answers."""

from __future__ import annotations

import gzip
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from cim.io.sumo import LANE_CAPACITY_VPH, import_sumo_net, read_sumo_connections, read_sumo_net, road_class_of
from cim.schema import conform
from twin_core.errors import CRSError, ImportFormatError, SchemaError

ROOT = Path(__file__).resolve().parents[2]
CHENGDU = ROOT.parent / "shared" / "data" / "chengdu" / "chengdu.net.xml"
SHIPPED = ROOT / "sample_city" / "data" / "chengdu.net.xml.gz"


def _chengdu_path() -> Path:
    if CHENGDU.exists():
        return CHENGDU
    if SHIPPED.exists():  # a clean clone without ../shared: the copy shipped with sample_city
        return SHIPPED
    pytest.skip("no Chengdu network (neither ../shared/data nor sample_city/data)")


@pytest.fixture(scope="module")
def chengdu():
    path = _chengdu_path()
    links, nodes = read_sumo_net(path)
    return path, links, nodes


def _raw(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return ET.parse(fh).getroot()


def test_chengdu_every_normal_edge_and_junction(chengdu):
    path, links, nodes = chengdu
    root = _raw(path)
    normal = [e for e in root.iter("edge") if e.get("function") is None]
    junctions = [j for j in root.iter("junction") if j.get("type") != "internal"]
    # counts stated by the data README (852 edges); the README's "582 junctions" is not what the
    # file holds: 579 <junction> elements of which 120 are internal, so 459 real junctions.
    assert len(normal) == 852 and len(links) == 852
    assert len(junctions) == 459 and len(nodes) == 459
    assert set(links.link_id) == {e.get("id") for e in normal}
    assert set(nodes.node_id) == {j.get("id") for j in junctions}
    assert set(links.from_node) | set(links.to_node) <= set(nodes.node_id)
    assert links.attrs["skipped"] == {"internal": sum(1 for e in root.iter("edge") if e.get("function"))}
    # already conforming: conform() again changes nothing
    assert list(conform(links, "road_links").columns) == list(links.columns)
    assert list(conform(nodes, "road_nodes").columns) == list(nodes.columns)
    assert links.crs.to_epsg() == 4544 and nodes.crs.to_epsg() == 4544
    assert links.oneway.all() and links.link_id.is_unique


def test_chengdu_lengths_match_sumo_lane_lengths(chengdu):
    path, links, _ = chengdu
    root = _raw(path)
    sumo_total = 0.0
    for e in root.iter("edge"):
        if e.get("function") is None:
            sumo_total += float(np.mean([float(l.get("length")) for l in e.iter("lane")]))
    assert links.length_m.sum() == pytest.approx(sumo_total, rel=1e-9)
    # issue 2 "done when": summed geometry length within 0.5 % of the SUMO lengths. EPSG:4544 (GK, k0=1 at
    # 105E) and UTM 48N (k0=0.9996 at 105E) differ in scale by ~0.05 % at Chengdu, well inside that.
    geom_total = links.geometry.length.sum()
    assert abs(geom_total / sumo_total - 1) < 0.005
    # in the net's own projection the centre lines reproduce SUMO's lane lengths almost exactly
    utm, _ = read_sumo_net(path, crs="EPSG:32648")
    assert abs(utm.geometry.length.sum() / sumo_total - 1) < 1e-4
    ratio = (utm.geometry.length / utm.length_m)[utm.length_m > 20]
    assert ratio.between(0.98, 1.02).all()


def test_chengdu_lands_in_central_chengdu(chengdu):
    _, links, nodes = chengdu
    lon0, lat0, lon1, lat1 = links.to_crs(4326).total_bounds
    assert 104.0 < lon0 < lon1 < 104.1
    assert 30.6 < lat0 < lat1 < 30.7
    nlon0, nlat0, nlon1, nlat1 = nodes.to_crs(4326).total_bounds
    assert 104.0 < nlon0 < nlon1 < 104.1 and 30.6 < nlat0 < nlat1 < 30.7
    # the links start near their from-junction (SUMO cuts lanes at the junction border, < ~60 m away)
    starts = links.geometry.apply(lambda g: g.coords[0])
    nxy = nodes.set_index("node_id").geometry
    d = [np.hypot(x - nxy[f].x, y - nxy[f].y) for (x, y), f in zip(starts, links.from_node)]
    assert np.median(d) < 20 and max(d) < 80


def test_chengdu_attributes(chengdu):
    path, links, nodes = chengdu
    root = _raw(path)
    e = {x.get("id"): x for x in root.iter("edge") if x.get("function") is None}
    row = links.set_index("link_id").loc["-100288855#0"]
    raw = e["-100288855#0"]
    assert row.from_node == raw.get("from") and row.to_node == raw.get("to")
    assert row.road_class == "residential" and row.priority == 3
    assert row.speed_limit_kmh == pytest.approx(13.89 * 3.6)
    assert row["name"] == "棕南正街"
    assert row.capacity_vph == pytest.approx(row.lanes * LANE_CAPACITY_VPH["residential"])
    lanes_raw = links.link_id.map(lambda i: len(e[i].findall("lane")))
    assert (links.lanes <= lanes_raw).all() and (links.lanes >= 1).all()
    assert set(links.road_class) <= {"trunk", "primary", "secondary", "tertiary", "residential", "unclassified",
                                     "service"}
    assert set(nodes.kind) == {"priority", "traffic_light", "dead_end", "right_before_left"}
    assert (nodes.kind == "traffic_light").sum() == 46
    # more lanes of a higher class -> more capacity
    assert links.groupby("road_class").capacity_vph.median()["primary"] > \
        links.groupby("road_class").capacity_vph.median()["residential"]


def test_chengdu_routes_map_onto_links(chengdu):
    _, links, _ = chengdu
    rou = CHENGDU.parent / "morning_rush_hour.rou.xml"
    if not rou.exists():
        pytest.skip("no ../shared/data/chengdu/morning_rush_hour.rou.xml")
    ids = set(links.link_id)
    used = set()
    for _, el in ET.iterparse(rou):
        if el.tag == "route" and el.get("edges"):
            used.update(el.get("edges").split())
        el.clear()
    assert used and used <= ids


def test_chengdu_connections(chengdu):
    path, links, _ = chengdu
    con = read_sumo_connections(path)
    ids = set(links.link_id)
    assert len(con) > 1000
    assert set(con.from_edge) <= ids and set(con.to_edge) <= ids
    assert set(con.dir) <= {"s", "l", "r", "L", "R", "t"}
    # each connection leaves at the from-edge's end junction and enters the to-edge at its start junction
    by = links.set_index("link_id")
    assert (by.loc[con.from_edge, "to_node"].to_numpy() == by.loc[con.to_edge, "from_node"].to_numpy()).all()
    assert con.from_lane.ge(0).all() and con.via.str.startswith(":").all()
    with_internal = read_sumo_connections(path, internal=True)
    assert len(with_internal) > len(con)


def test_gzipped_and_stream_inputs_equal_plain(tmp_path):
    src = _chengdu_path()
    data = gzip.open(src).read() if src.suffix == ".gz" else src.read_bytes()
    gz = tmp_path / "net.net.xml.gz"
    gz.write_bytes(gzip.compress(data))
    a, an = read_sumo_net(io.BytesIO(data))
    b, bn = read_sumo_net(gz)
    with open(gz, "rb") as fh:
        c, _ = read_sumo_net(fh)
    assert a.equals(b) and a.equals(c) and an.equals(bn)


# ---------------------------------------------------------------- hand-made nets with known answers

def _net(body: str, location: str | None = '<location netOffset="-500000.00,-3300000.00" '
         'convBoundary="0,0,200,100" origBoundary="105,29.8,105.01,29.81" '
         'projParameter="+proj=utm +zone=48 +ellps=WGS84 +datum=WGS84 +units=m +no_defs"/>') -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<net version="1.20">\n{location or ""}\n'
            f'<type id="highway.primary" priority="12" numLanes="2" speed="27.78"/>\n{body}\n</net>\n').encode()


_TWO_NODES = """
<edge id=":J1_0" function="internal"><lane id=":J1_0_0" index="0" speed="5" length="3" shape="100,0 100,3"/></edge>
<edge id="a" from="J0" to="J1" priority="12" type="highway.primary_link" name="Ramp">
  <lane id="a_0" index="0" allow="pedestrian" speed="2.00" length="100.00" shape="0,-6 100,-6"/>
  <lane id="a_1" index="1" speed="13.89" length="100.00" shape="0,-3 100,-3"/>
  <lane id="a_2" index="2" speed="16.67" length="100.00" shape="0,0 100,0"/>
</edge>
<edge id="b" from="J1" to="J0" priority="3" type="custom.thing">
  <lane id="b_0" index="0" speed="8.33" length="100.00" shape="100,3 0,3"/>
</edge>
<junction id="J0" type="dead_end" x="0.00" y="0.00" z="12.5" incLanes="b_0" intLanes="" shape="0,0 0,1"/>
<junction id="J1" type="traffic_light" x="100.00" y="0.00" incLanes="a_0" intLanes="" shape="100,0 100,1"/>
<junction id=":J1_0_0" type="internal" x="100.00" y="1.00" incLanes="" intLanes=""/>
<connection from="a" to="b" fromLane="1" toLane="0" via=":J1_0_0" tl="J1" linkIndex="0" dir="t" state="O"/>
<connection from=":J1_0" to="b" fromLane="0" toLane="0" dir="t" state="M"/>
"""


def test_small_net_known_values():
    links, nodes = read_sumo_net(io.BytesIO(_net(_TWO_NODES)), crs="EPSG:32648")
    assert list(links.link_id) == ["a", "b"] and list(nodes.node_id) == ["J0", "J1"]
    a = links.iloc[0]
    assert a.lanes == 2  # the pedestrian-only lane is a sidewalk, not counted
    assert a.speed_limit_kmh == pytest.approx(16.67 * 3.6)
    assert a.road_class == "primary" and a["name"] == "Ramp" and a.priority == 12
    assert a.capacity_vph == pytest.approx(2 * LANE_CAPACITY_VPH["primary"] * 0.9)  # a _link: 90 %
    # geometry: mean of first and last lane, minus the net offset -> UTM 48N coordinates
    assert list(a.geometry.coords) == [(500000.0, 3299997.0), (500100.0, 3299997.0)]
    assert a.length_m == 100.0
    b = links.iloc[1]
    assert b.road_class == "residential"  # unknown type: class from priority 3
    assert nodes.iloc[0].elevation_m == 12.5 and np.isnan(nodes.iloc[1].elevation_m)
    assert list(nodes.kind) == ["dead_end", "traffic_light"]
    assert nodes.geometry.iloc[1].x == pytest.approx(500100.0)
    con = read_sumo_connections(io.BytesIO(_net(_TWO_NODES)))
    assert con.to_dict("records") == [{"from_edge": "a", "to_edge": "b", "from_lane": 1, "to_lane": 0,
                                       "via": ":J1_0_0", "tl": "J1", "link_index": 0, "dir": "t", "state": "O"}]


def test_small_net_reprojects_to_4544():
    from pyproj import Transformer

    links, nodes = read_sumo_net(io.BytesIO(_net(_TWO_NODES)))  # default EPSG:4544
    x, y = Transformer.from_crs(32648, 4544, always_xy=True).transform(500100.0, 3300000.0)
    assert nodes.geometry.iloc[1].x == pytest.approx(x, abs=1e-6)
    assert nodes.geometry.iloc[1].y == pytest.approx(y, abs=1e-6)
    assert links.crs.to_epsg() == 4544


def test_road_class_mapping():
    assert road_class_of("highway.primary") == ("primary", False)
    assert road_class_of("highway.trunk_link") == ("trunk", True)
    assert road_class_of("highway.living_street") == ("residential", False)
    assert road_class_of("highway.residential|railway.tram") == ("residential", False)
    assert road_class_of(None, 14) == ("motorway", False)
    assert road_class_of("railway.rail", None) == ("other", False)
    assert road_class_of(None, 1) == ("service", False)


# ---------------------------------------------------------------- bad input

def test_not_xml(tmp_path):
    p = tmp_path / "x.net.xml"
    p.write_bytes(b"this is not xml at all, just text\n")
    with pytest.raises(ImportFormatError, match="not XML"):
        read_sumo_net(p)


def test_not_a_sumo_net(tmp_path):
    p = tmp_path / "x.osm"
    p.write_text('<?xml version="1.0"?><osm version="0.6"><node id="1" lat="30" lon="104"/></osm>')
    with pytest.raises(ImportFormatError, match="not a SUMO network.*<osm>"):
        read_sumo_net(p)


def test_missing_location_needs_net_crs():
    data = _net(_TWO_NODES, location=None)
    with pytest.raises(CRSError, match="no <location>.*net_crs"):
        read_sumo_net(io.BytesIO(data))
    links, _ = read_sumo_net(io.BytesIO(data), crs="EPSG:32648", net_crs="EPSG:32648")
    assert links.geometry.iloc[0].coords[0] == (0.0, -3.0)  # no offset without <location>


def test_not_georeferenced_net():
    loc = '<location netOffset="0.00,0.00" convBoundary="0,0,200,100" origBoundary="0,0,200,100" projParameter="!"/>'
    with pytest.raises(CRSError, match="not georeferenced"):
        read_sumo_net(io.BytesIO(_net(_TWO_NODES, location=loc)))


def test_bad_proj_parameter():
    loc = '<location netOffset="0.00,0.00" convBoundary="0,0,1,1" origBoundary="0,0,1,1" projParameter="+proj=nope"/>'
    with pytest.raises(CRSError, match="projParameter"):
        read_sumo_net(io.BytesIO(_net(_TWO_NODES, location=loc)))


def test_truncated_file(tmp_path):
    src = _chengdu_path()
    data = gzip.open(src).read() if src.suffix == ".gz" else src.read_bytes()
    p = tmp_path / "cut.net.xml"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImportFormatError, match="truncated"):
        read_sumo_net(p)
    g = tmp_path / "cut.net.xml.gz"
    g.write_bytes(gzip.compress(data)[:5000])
    with pytest.raises(ImportFormatError):
        read_sumo_net(g)


def test_missing_empty_and_edgeless(tmp_path):
    with pytest.raises(ImportFormatError, match="does not exist"):
        read_sumo_net(tmp_path / "nope.net.xml")
    empty = tmp_path / "empty.net.xml"
    empty.write_bytes(b"")
    with pytest.raises(ImportFormatError):
        read_sumo_net(empty)
    with pytest.raises(ImportFormatError, match="without normal edges"):
        read_sumo_net(io.BytesIO(_net('<junction id="J0" type="dead_end" x="0" y="0" incLanes="" intLanes=""/>')))


def test_edge_with_unknown_junction_or_no_lanes():
    body = _TWO_NODES.replace('to="J1" priority="12"', 'to="J9" priority="12"')
    with pytest.raises(ImportFormatError, match="J9"):
        read_sumo_net(io.BytesIO(_net(body)))
    body = '<edge id="z" from="J0" to="J1"/>' + _TWO_NODES
    with pytest.raises(ImportFormatError, match="no <lane>"):
        read_sumo_net(io.BytesIO(_net(body)))
    body = _TWO_NODES.replace('speed="13.89"', 'speed="fast"')
    with pytest.raises(ImportFormatError, match="speed"):
        read_sumo_net(io.BytesIO(_net(body)))


def test_bad_target_crs():
    with pytest.raises(CRSError, match="no CRS given"):
        read_sumo_net(io.BytesIO(_net(_TWO_NODES)), crs=None)
    with pytest.raises(CRSError, match="unknown CRS"):
        read_sumo_net(io.BytesIO(_net(_TWO_NODES)), crs="EPSG:999999")


def test_import_into_store_is_atomic(store):
    """Both stores: the real net lands in the store's CRS; a damaged net changes nothing."""
    counts = import_sumo_net(store, _chengdu_path())
    assert counts == {"road_links": 852, "road_nodes": 459}
    back = store.read_layer("road_links")
    assert back.crs.to_epsg() == 4544 and set(back.link_id) >= {"-100288855#0"}
    bad = io.BytesIO(_net(_TWO_NODES.replace('to="J1" priority="12"', 'to="J9" priority="12"')))
    with pytest.raises(ImportFormatError):
        import_sumo_net(store, bad, links="r2", nodes="n2")
    assert not store.has_layer("r2") and not store.has_layer("n2")
    # the links are written, then the nodes fail: the links are rolled back too
    with pytest.raises(SchemaError):
        import_sumo_net(store, io.BytesIO(_net(_TWO_NODES)), links="r3", nodes="Not A Name!")
    assert not store.has_layer("r3")
    assert len(store.read_layer("road_nodes")) == 459


@pytest.mark.parametrize("old,new,match", [
    ('z="12.5"', 'z="high"', "junction 'J0' has no numeric x/y/z"),          # was a raw ValueError
    ('shape="0,0 100,0"', 'shape="0 100"', "shape '0 100' is not 'x,y"),      # was a raw ValueError
    ('shape="0,0 100,0"', 'shape="0,0 100"', "is not 'x,y"),                 # was a raw ValueError
    ('shape="0,0 100,0"', 'shape="nan,0 100,0"', "finite"),                  # was blamed on projParameter
    ('speed="16.67"', 'speed="nan"', "speed"),                              # was imported as NaN km/h
    ('speed="8.33"', 'speed="-8.33"', "speed"),                             # was imported as -30 km/h
    ('length="100.00" shape="100,3', 'length="-1" shape="100,3', "length"),  # was imported as -1 m
    ('length="100.00" shape="100,3', 'length="inf" shape="100,3', "length"),  # was imported as inf m
])
def test_damaged_values_are_refused(old, new, match):
    body = _TWO_NODES.replace(old, new, 1)
    assert body != _TWO_NODES
    with pytest.raises(ImportFormatError, match=match):
        read_sumo_net(io.BytesIO(_net(body)))


def test_folder_instead_of_a_net(tmp_path):
    with pytest.raises(ImportFormatError, match="is a folder"):  # was a raw IsADirectoryError
        read_sumo_net(tmp_path)


def test_projection_that_places_the_net_elsewhere_is_refused():
    # a net whose projParameter is wrong (here: lon/lat where the net is in metres, or the wrong UTM zone)
    # landed thousands of km from Chengdu without a word
    for proj, offset in (("+proj=longlat +datum=WGS84", "0,0"), ("+proj=utm +zone=50 +datum=WGS84 +units=m",
                                                                   "-500000.00,-3300000.00")):
        loc = (f'<location netOffset="{offset}" convBoundary="0,0,200,100" '
               f'origBoundary="105,29.8,105.01,29.81" projParameter="{proj}"/>')
        with pytest.raises(CRSError, match="outside the area the CRS EPSG:4544 covers.*net_crs"):
            read_sumo_net(io.BytesIO(_net(_TWO_NODES, location=loc)))
    # naming the right zone overrides the wrong projParameter
    links, _ = read_sumo_net(io.BytesIO(_net(_TWO_NODES, location=loc)), net_crs="EPSG:32648")
    assert links.crs.to_epsg() == 4544
