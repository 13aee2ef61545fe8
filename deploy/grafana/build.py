"""tslcd's Grafana dashboards as code (grafana-foundation-sdk==0.0.21), written to dashboards/*.json.

    .venv/bin/python deploy/grafana/build.py           rewrite deploy/grafana/dashboards/*.json
    .venv/bin/python deploy/grafana/build.py --check   exit 1 if the committed JSON is not this output

Every PromQL query is declared here with the shape of data it must return
(``Expect``); tests/test_deploy_e2e.py sends each one to a real Prometheus scraping a
real tslcd and checks it, and tests/test_federation.py those of the boards in CENTRAL on a central
Prometheus federating two pollers' Prometheus. Metric names come from exporters/metrics.py
(docs/design.md) and recording-rule names from deploy/prometheus/rules/tslcd-recording.yml (a province's
Prometheus) and deploy/prometheus/national/rules/tslcd-national.yml (the central one).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import (
    gauge,
    geomap,
    heatmap,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery as PromQuery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).resolve().parent / "dashboards"
DS = cm.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Only nodes polled over SNMP (an `snmp` profile in the inventory) have these series.
SNMP_ONLY = "SNMP metrics: only for nodes with an snmp profile"

# Node states encoded as numbers for timelines and stats (0: a commune with no circuit).
STATE_CODE = """(
  sum without (state) (
      tslcd_node_state{state="up"}
    or tslcd_node_state{state="down"} * 2
    or tslcd_node_state{state="unreachable"} * 3
    or tslcd_node_state{state="unknown"} * 4
    or tslcd_node_state{state="maintenance"} * 5
  )
  or tslcd_node_up * 0
)"""
STATE_TEXT = [  # value, Vietnamese / English, colour
    (0, "chưa có đường truyền / no circuit", "#8e8e8e"),
    (1, "kết nối / up", "green"),
    (2, "mất kết nối / down", "red"),
    (3, "không truy cập được / unreachable", "orange"),
    (4, "chưa rõ / unknown", "blue"),
    (5, "bảo trì / maintenance", "purple"),
]


# Nodes down or unreachable now, with the name of the failed upstream node that cut each
# unreachable one off (tslcd_node_unreachable_cause{cause}; `cause` joined to its name).
DOWN_LIST = """(tslcd_node_state{state=~"down|unreachable"} == 1)
* on (code) group_left (name, kind, province, area)
tslcd_node_info{province="$province", area=~"$area"}
* on (code) group_left (cause, cause_name) (
    tslcd_node_unreachable_cause
    * on (cause) group_left (cause_name)
    label_replace(label_replace(tslcd_node_info, "cause", "$1", "code", "(.+)"), "cause_name", "$1", "name", "(.+)")
  or on (code)
    0 * tslcd_node_up + 1
)"""


# Per carrier (tslcd_carrier_communes*, exporters/carriers.py): the communes with a circuit whose inventory names
# no carrier are exported with carrier="", which Prometheus stores as no label; the boards name them thus.
NO_CARRIER_LABEL = "chưa ghi nhà mạng / no carrier recorded"


def by_carrier(expr: str) -> str:
    """``expr`` (per carrier) with the communes of no carrier named as NO_CARRIER_LABEL."""
    return f'label_replace({expr}, "carrier", "{NO_CARRIER_LABEL}", "carrier", "")'


def carrier_minutes(metric: str) -> str:
    """Commune-minutes of ``metric`` (a count of communes) per carrier over the dashboard's range: one sample a
    minute (subquery), summed over pollers (shards) and over time."""
    return f'sum by (carrier) (sum_over_time({metric}{{province="$province"}}[$__range:1m]))'


# A carrier's availability over the range: 1 - commune-minutes cut off / commune-minutes observed (none for a
# carrier never observed in the range).
CARRIER_AVAILABILITY = by_carrier(f"""
  1 - {carrier_minutes("tslcd_carrier_communes_cut_off")}
  / ({carrier_minutes("tslcd_carrier_communes_observed")} > 0)
""")
CARRIER_OUTAGE_MINUTES = by_carrier(carrier_minutes("tslcd_carrier_communes_cut_off"))


def _communes(extra: str = "") -> str:
    """The communes of the chosen province and areas (plus ``extra`` matchers)."""
    return f'tslcd_node_info{{kind="commune", province="$province", area=~"$area"{extra}}}'


@dataclass(frozen=True)
class Expect:
    """What a query must return from a Prometheus that scrapes a running tslcd."""

    labels: tuple[str, ...] = ()          # every series carries these labels
    min_series: int = 1
    bounds: tuple[float, float] | None = None  # every value within [lo, hi]
    pending: str | None = None            # why it may be empty for some nodes (parse is still checked)


@dataclass(frozen=True)
class QueryCheck:
    """One PromQL expression of a dashboard, where it is, and what it must return."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool
    expect: Expect


@dataclass
class _Q:
    expr: str
    legend: str | None = None
    instant: bool = False
    table: bool = False
    expect: Expect = field(default_factory=Expect)

    def build(self, ref_id: str) -> PromQuery:
        q = PromQuery().expr(self.expr).ref_id(ref_id).datasource(DS)
        if self.legend is not None:
            q = q.legend_format(self.legend)
        if self.table:
            q = q.format(PromQueryFormat.TABLE)
        return q.instant() if self.instant else q.range()


class _Board:
    """Collects panels with their queries' checks, numbering panels and queries."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.checks: list[QueryCheck] = []
        self._next_id = 1

    def row(self, title: str) -> db.Row:
        """An (expanded) row: the panels added after it, up to the next row, are under it."""
        row = db.Row(title).id(self._next_id).datasource(DS)
        self._next_id += 1
        return row

    def panel(self, builder: Any, title: str, *queries: _Q) -> Any:
        builder = builder.id(self._next_id).title(title).datasource(DS)
        self._next_id += 1
        for i, q in enumerate(queries):
            ref = chr(ord("A") + i)
            builder = builder.with_target(q.build(ref))
            self.checks.append(QueryCheck(self.uid, title, ref, q.expr, q.instant, q.expect))
        return builder


def _thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=v, color=c) for v, c in steps])


def _state_mappings() -> list[dm.ValueMapping]:
    return [dm.ValueMap(options={str(v): dm.ValueMappingResult(text=t, color=c, index=i)
                                 for i, (v, t, c) in enumerate(STATE_TEXT)})]


def _last() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _rate_thresholds() -> db.ThresholdsConfig:
    return _thresholds((None, "red"), (0.9, "orange"), (0.99, "yellow"), (1, "green"))


def _rate_gauge(description: str) -> gauge.Panel:
    """A connection rate as a gauge against the thresholds (its query: the panel's)."""
    return (gauge.Panel().span(6).height(8).reduce_options(_last()).unit("percentunit").min(0).max(1).decimals(1)
            .thresholds(_rate_thresholds()).show_threshold_markers(True).description(description))


def _live_rate_graph(span: int, description: str) -> timeseries.Panel:
    """Live connection rates over 30 days, the target (legend "mục tiêu / target") as a dashed line."""
    return (timeseries.Panel().span(span).height(9).time_from("30d").unit("percentunit").min(0).max(1)
            .line_interpolation(cm.LineInterpolation.STEP_AFTER)
            .description(description)
            .legend(cb.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.LIST)
                    .placement(cm.LegendPlacement.BOTTOM))
            .override_by_name("mục tiêu / target", [
                dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
                dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "green"})]))


def _datasource_var() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Nguồn dữ liệu / Data source").type("prometheus")


def _province_var() -> db.QueryVariable:
    query = "label_values(tslcd_node_info, province)"
    return (db.QueryVariable("province").label("Tỉnh / Province").datasource(DS).query(query).definition(query)
            .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD).sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC))


def province_overview() -> tuple[db.Dashboard, list[QueryCheck]]:
    """Rate against the target, per-area table, commune states, down list, loss/latency heatmaps, map."""
    b = _Board("tslcd-province")
    area_query = 'label_values(tslcd_node_info{province="$province"}, area)'
    area_var = (db.QueryVariable("area").label("Khu vực / Area").datasource(DS).query(area_query)
                .definition(area_query).multi(True).include_all(True).all_value(".*")
                .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
                .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
                .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC))
    ratio = Expect(labels=("province",), bounds=(0.0, 1.0))
    d = (db.Dashboard("TSLCD: tổng quan tỉnh / province overview").uid(b.uid)
         .tags(["tslcd"]).refresh("1m").time("now-24h", "now").timezone("browser")
         .description("Tỷ lệ xã/phường kết nối mạng TSLCD so với mục tiêu 100% (design.md: kết nối = trạng thái up; "
                      "mẫu số gồm cả xã chưa có đường truyền). Connection rate against the 100% target.")
         .with_variable(_datasource_var()).with_variable(_province_var()).with_variable(area_var))

    d = d.with_panel(b.panel(
        _rate_gauge("Xã/phường đang kết nối / tất cả xã/phường đang hoạt động, kể cả chưa có đường truyền. "
                    "Connected communes / all active communes, provisioned or not."),
        "Tỷ lệ kết nối / Connection rate",
        _Q('province_area:tslcd_connection_rate:ratio{province="$province", area=""}', legend="{{province}}",
           instant=True, expect=ratio)))
    day_rate = Expect(labels=("province", "period"), bounds=(0.0, 1.0))

    def history(metric: str, period: str, legend: str) -> _Q:
        return _Q(f'{metric}{{province="$province", area="", period="{period}"}}', legend=legend, instant=True,
                  expect=day_rate)

    d = d.with_panel(b.panel(
        stat.Panel().reduce_options(_last()).span(6).height(8).unit("percentunit").decimals(1)
        .thresholds(_rate_thresholds()).color_mode(cm.BigValueColorMode.VALUE).graph_mode(cm.BigValueGraphMode.NONE)
        .description("Từ lịch sử của tslcd (design.md): một xã được tính là kết nối trong ngày khi khả dụng ngày đó "
                     ">= rates.connected_min_availability; tỷ lệ 30 ngày là trung bình các tỷ lệ ngày. Chưa có số "
                     "hôm qua và 30 ngày cho đến khi lịch sử có một ngày trọn. From tslcd's history: a commune is "
                     "connected on a day when its availability that day reaches rates.connected_min_availability; "
                     "the 30-day rate is the mean of the daily rates (none until the history holds a whole day)."),
        "Tỷ lệ kết nối theo ngày / Daily connection rate",
        history("tslcd_connected_day_rate_ratio", "today", "hôm nay / today"),
        history("tslcd_connected_day_rate_ratio", "yesterday", "hôm qua / yesterday"),
        history("tslcd_connected_day_rate_ratio", "last_30d", "30 ngày / 30 days")))
    d = d.with_panel(b.panel(
        stat.Panel().reduce_options(_last()).span(3).height(8).unit("percentunit").decimals(0)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("green")),
        "Mục tiêu / Target",
        _Q("max(tslcd_connection_target_ratio)", legend="mục tiêu / target", instant=True,
           expect=Expect(bounds=(0.0, 1.0)))))
    d = d.with_panel(b.panel(
        stat.Panel().reduce_options(_last()).span(3).height(8).unit("none").decimals(0)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("text")),
        "Xã/phường / Communes",
        _Q('tslcd_communes_connected{province="$province", area=""}', legend="kết nối / connected", instant=True,
           expect=Expect(labels=("province",), bounds=(0.0, 1e6))),
        _Q('tslcd_communes_provisioned{province="$province", area=""}', legend="có đường truyền / provisioned",
           instant=True, expect=Expect(labels=("province",), bounds=(0.0, 1e6))),
        _Q('tslcd_communes{province="$province", area=""}', legend="tổng / total", instant=True,
           expect=Expect(labels=("province",), bounds=(0.0, 1e6)))))
    d = d.with_panel(b.panel(
        stat.Panel().reduce_options(_last()).span(6).height(8).unit("percentunit").decimals(1)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("text"))
        .graph_mode(cm.BigValueGraphMode.NONE)
        .description("Bình quân các ngày trong 30 ngày qua, từ lịch sử của tslcd: xã có đường truyền, xã đang sử "
                     "dụng (kết nối và lưu lượng uplink >= rates.in_use_min_bytes trong ngày), và phần thời gian "
                     "tslcd đã giám sát. Means of the daily figures over the last 30 days: provisioned, in use "
                     "(connected and uplink traffic >= rates.in_use_min_bytes that day), monitor coverage."),
        "30 ngày: cấp, sử dụng, giám sát / 30 days: provisioned, in use, coverage",
        history("tslcd_provisioned_day_rate_ratio", "last_30d", "có đường truyền / provisioned"),
        history("tslcd_in_use_day_rate_ratio", "last_30d", "đang sử dụng / in use"),
        _Q('tslcd_monitor_coverage_ratio{period="last_30d"}', legend="giám sát / coverage", instant=True,
           expect=Expect(labels=("period",), bounds=(0.0, 1.0)))))
    d = d.with_panel(b.panel(
        _live_rate_graph(12, "Tỷ lệ tức thời (xã đang up / tất cả xã) do Prometheus ghi lại, không phải tỷ lệ theo "
                         "ngày. The live rate (communes up now / all communes) as Prometheus recorded it, not the "
                         "daily rate."),
        "Tỷ lệ kết nối tức thời, 30 ngày / Live connection rate, 30 days",
        _Q('province_area:tslcd_connection_rate:ratio{province="$province", area=""}', legend="{{province}}",
           expect=ratio),
        _Q('province_area:tslcd_connection_rate:ratio{province="$province", area!="", area=~"$area"}',
           legend="{{area}}", expect=Expect(labels=("province", "area"), bounds=(0.0, 1.0))),
        _Q("max(tslcd_connection_target_ratio)", legend="mục tiêu / target", expect=Expect(bounds=(0.0, 1.0)))))

    by_area = 'sum by (province, area) ({metric}{{province="$province", area=~"$area"}})'
    d = d.with_panel(b.panel(
        table.Panel().span(12).height(9)
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True, "province": True},
            "indexByName": {"area": 0, "Value #A": 1, "Value #F": 2, "Value #B": 3, "Value #C": 4,
                            "Value #D": 5, "Value #E": 6},
            "renameByName": {"area": "Khu vực / Area (trống: toàn tỉnh / empty: province)",
                             "Value #A": "Tỷ lệ / Rate", "Value #B": "Kết nối / Connected",
                             "Value #C": "Tổng / Communes", "Value #D": "Khả dụng 1 ngày / 1-day availability",
                             "Value #E": "Khả dụng 30 ngày / 30-day availability",
                             "Value #F": "Tỷ lệ 30 ngày / 30-day rate (mean of daily)"}}))
        .override_by_regexp("Tỷ lệ.*|Khả dụng.*", [
            dm.DynamicConfigValue(id_val="unit", value="percentunit"),
            dm.DynamicConfigValue(id_val="decimals", value=1)]),
        "Theo khu vực / By area",
        _Q('province_area:tslcd_connection_rate:ratio{province="$province", area=~"$area"}', instant=True,
           table=True, expect=ratio),
        _Q(by_area.format(metric="tslcd_communes_connected"), instant=True, table=True,
           expect=Expect(labels=("province",), bounds=(0.0, 1e6))),
        _Q(by_area.format(metric="tslcd_communes"), instant=True, table=True,
           expect=Expect(labels=("province",), bounds=(0.0, 1e6))),
        _Q('province_area:tslcd_availability:ratio_1d{province="$province", area=~"$area"}', instant=True,
           table=True, expect=ratio),
        _Q('province_area:tslcd_availability:ratio_30d{province="$province", area=~"$area"}', instant=True,
           table=True, expect=ratio),
        # max by: the same label set as the other columns, so that "merge" joins the rows.
        _Q('max by (province, area) (tslcd_connected_day_rate_ratio{province="$province", area=~"$area", '
           'period="last_30d"})', instant=True, table=True, expect=ratio)))
    d = d.with_panel(b.panel(
        table.Panel().span(24).height(8)
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True, "instance": True,
                              "province": True, "cause": True},
            "indexByName": {"name": 0, "code": 1, "kind": 2, "area": 3, "state": 4, "cause_name": 5},
            "renameByName": {"name": "Tên / Name", "code": "Mã / Code", "kind": "Loại / Kind",
                             "area": "Khu vực / Area", "state": "Trạng thái / State",
                             "cause_name": "Do nút hỏng / Cut off by"}}))
        .description("Xã/phường unreachable: nút mạng phía trên đang hỏng (nút cao nhất), theo "
                     "tslcd_node_unreachable_cause. Unreachable nodes: the topmost failed upstream node."),
        "Đang mất kết nối / Down or unreachable now",
        _Q(DOWN_LIST, instant=True, table=True,
           expect=Expect(labels=("code", "name", "kind", "state"), min_series=0, bounds=(1.0, 1.0)))))
    per_carrier = Expect(labels=("carrier",), bounds=(0.0, 1e9))
    d = d.with_panel(b.panel(
        table.Panel().span(12).height(9)
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True},
            "indexByName": {"carrier": 0, "Value #A": 1, "Value #B": 2, "Value #C": 3, "Value #D": 4,
                            "Value #E": 5},
            "renameByName": {"carrier": "Nhà mạng / Carrier", "Value #A": "Khả dụng / Availability",
                             "Value #B": "Phút mất kết nối / Outage commune-minutes",
                             "Value #C": "Phút theo dõi / Observed commune-minutes",
                             "Value #D": "Xã có đường truyền / Communes with a circuit",
                             "Value #E": "Đang mất kết nối / Cut off now"}}))
        .override_by_name("Khả dụng / Availability", [
            dm.DynamicConfigValue(id_val="unit", value="percentunit"),
            dm.DynamicConfigValue(id_val="decimals", value=2)])
        .description("Theo nhà mạng, trong khoảng thời gian đang xem của tỉnh (không theo khu vực): khả dụng = 1 - "
                     "(xã-phút mất kết nối / xã-phút được theo dõi); mất kết nối = down hoặc unreachable, theo dõi = "
                     "up, down hoặc unreachable (unknown và bảo trì không tính), mỗi phút một mẫu của "
                     "tslcd_carrier_communes_cut_off và _observed do Prometheus ghi. Số liệu chính thức để đối chiếu "
                     "hợp đồng là tslcd audit (lịch sử của tslcd). Per carrier over the dashboard's time range, for "
                     "the province (not by area): availability = 1 - (commune-minutes cut off / commune-minutes "
                     "observed); cut off = down or unreachable, observed = up, down or unreachable (unknown and "
                     "maintenance left out), one sample a minute of tslcd_carrier_communes_cut_off and _observed as "
                     "Prometheus recorded them. The authoritative figure, to hold a carrier to its contract, is "
                     "tslcd audit's (tslcd's history)."),
        "Theo nhà mạng / By carrier",
        _Q(CARRIER_AVAILABILITY, instant=True, table=True, expect=Expect(labels=("carrier",), bounds=(0.0, 1.0))),
        _Q(CARRIER_OUTAGE_MINUTES, instant=True, table=True, expect=per_carrier),
        _Q(by_carrier(carrier_minutes("tslcd_carrier_communes_observed")), instant=True, table=True,
           expect=per_carrier),
        _Q(by_carrier('sum by (carrier) (tslcd_carrier_communes{province="$province"})'), instant=True,
           table=True, expect=per_carrier),
        _Q(by_carrier('sum by (carrier) (tslcd_carrier_communes_cut_off{province="$province"})'), instant=True,
           table=True, expect=per_carrier)))
    d = d.with_panel(b.panel(
        timeseries.Panel().span(12).height(9).min(0).decimals(0).line_interpolation(cm.LineInterpolation.STEP_AFTER)
        .legend(cb.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.LIST)
                .placement(cm.LegendPlacement.BOTTOM))
        .description("Số xã/phường có đường truyền đang down hoặc unreachable, theo nhà mạng ghi trong inventory "
                     "(tslcd_carrier_communes_cut_off). Communes with a circuit down or unreachable, by the carrier "
                     "the inventory names."),
        "Xã mất kết nối theo nhà mạng / Communes cut off by carrier",
        _Q(by_carrier('sum by (carrier) (tslcd_carrier_communes_cut_off{province="$province"})'),
           legend="{{carrier}}", expect=Expect(labels=("carrier",), bounds=(0.0, 1e6)))))

    d = d.with_panel(b.panel(
        statetimeline.Panel().span(24).height(14).mappings(_state_mappings()).show_value(cm.VisibilityMode.NEVER)
        .merge_values(True).row_height(0.9).legend(cb.VizLegendOptions().show_legend(False))
        .thresholds(_thresholds((None, "text"))),
        "Trạng thái các xã/phường / Commune states",
        _Q(f"{STATE_CODE}\n* on (code) group_left (name, area) {_communes()}", legend="{{name}}",
           expect=Expect(labels=("code", "name"), bounds=(0.0, 5.0)))))

    def heat(title: str, expr: str, unit: str, scheme: str) -> Any:
        return b.panel(
            heatmap.Panel().span(12).height(9).calculate(True)
            .color(heatmap.HeatmapColorOptions().mode(HeatmapColorMode.SCHEME).scheme(scheme).steps(64))
            .y_axis(heatmap.YAxisConfig().unit(unit).min(0)).cell_values(heatmap.CellValues().unit("none"))
            .description("Số xã/phường trong mỗi ô / communes per cell."),
            title, _Q(expr, legend="{{code}}", expect=Expect(labels=("code",), bounds=(0.0, 1e3))))

    d = d.with_panel(heat("Mất gói / Packet loss", f"tslcd_icmp_packet_loss_ratio and on (code) {_communes()}",
                          "percentunit", "Reds"))
    d = d.with_panel(heat("Độ trễ / Round-trip time", f"tslcd_icmp_rtt_seconds and on (code) {_communes()}",
                          "s", "Oranges"))

    marker = (cb.MapLayerOptions().type("markers").name("Xã/phường / Communes").tooltip(True)
              .location(cb.FrameGeometrySource().mode(cm.FrameGeometrySourceMode.COORDS)
                        .latitude("lat").longitude("lon"))
              .config({"showLegend": True, "style": {
                  "size": {"fixed": 6},
                  "color": {"field": "Value"},
                  "opacity": 0.8,
                  "text": {"field": "name", "mode": "field"},
                  "textConfig": {"fontSize": 10, "offsetY": -12}}}))
    d = d.with_panel(b.panel(
        geomap.Panel().span(24).height(14).view(geomap.MapViewConfig().id("fit"))
        # Labels arrive as text: the markers need numbers.
        .with_transformation(dm.DataTransformerConfig(id_val="convertFieldType", options={
            "conversions": [{"targetField": "lat", "destinationType": "number"},
                            {"targetField": "lon", "destinationType": "number"}],
            "fields": {}}))
        .basemap(cb.MapLayerOptions().type("default").name("Bản đồ / Basemap"))
        .layers([marker]).thresholds(_thresholds((None, "red"), (1, "green")))
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .description("Xã/phường có toạ độ (lat, lon) trong inventory; xanh: kết nối, đỏ: không. "
                     "Communes with lat/lon in the inventory; green: up, red: not up."),
        "Bản đồ / Map",
        _Q("tslcd_node_up * on (code) group_left (name, area, lat, lon) " + _communes(', lat!="", lon!=""'),
           instant=True, table=True,
           expect=Expect(labels=("code", "name", "lat", "lon"), bounds=(0.0, 1.0)))))
    return d, b.checks


def node_detail() -> tuple[db.Dashboard, list[QueryCheck]]:
    """One node (variable `code`): state history, rtt/loss, SNMP uptime and reboots, uplink traffic."""
    b = _Board("tslcd-node")
    code_query = 'query_result(tslcd_node_info{province=~"$province"})'
    code_var = (db.QueryVariable("code").label("Nút / Node").datasource(DS).query(code_query)
                .definition(code_query).regex('/code="(?<value>[^"]+)".*name="(?<text>[^"]+)"/')
                .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
                .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC))
    one = Expect(labels=("code",))
    state_one = STATE_CODE.replace("{state=", '{code="$code", state=').replace(
        "tslcd_node_up * 0", 'tslcd_node_up{code="$code"} * 0')
    d = (db.Dashboard("TSLCD: chi tiết nút / node detail").uid(b.uid)
         .tags(["tslcd"]).refresh("1m").time("now-24h", "now").timezone("browser")
         .description("Một nút TSLCD (biến code): lịch sử trạng thái, ping, SNMP, uplink. "
                      "One TSLCD node: state history, ICMP, SNMP, uplink.")
         .with_variable(_datasource_var()).with_variable(_province_var()).with_variable(code_var))

    d = d.with_panel(b.panel(
        table.Panel().span(12).height(5)
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True, "instance": True},
            "indexByName": {"name": 0, "code": 1, "kind": 2, "province": 3, "area": 4, "address": 5, "parent": 6,
                            "lat": 7, "lon": 8},
            "renameByName": {"name": "Tên / Name", "code": "Mã / Code", "kind": "Loại / Kind",
                             "province": "Tỉnh / Province", "area": "Khu vực / Area",
                             "address": "Địa chỉ / Address", "parent": "Nút phía trên / Parent",
                             "lat": "Vĩ độ / Latitude", "lon": "Kinh độ / Longitude"}})),
        "Nút / Node",
        _Q('tslcd_node_info{code="$code"}', instant=True, table=True,
           expect=Expect(labels=("code", "name", "kind", "province"), bounds=(1.0, 1.0)))))
    d = d.with_panel(b.panel(
        stat.Panel().reduce_options(_last()).span(4).height(5).mappings(_state_mappings())
        .color_mode(cm.BigValueColorMode.BACKGROUND).graph_mode(cm.BigValueGraphMode.NONE),
        "Trạng thái / State",
        _Q(state_one, instant=True, expect=Expect(labels=("code",), bounds=(0.0, 5.0)))))
    d = d.with_panel(b.panel(
        stat.Panel().reduce_options(_last()).span(4).height(5).unit("percentunit").decimals(2).thresholds(_rate_thresholds())
        .color_mode(cm.BigValueColorMode.VALUE).graph_mode(cm.BigValueGraphMode.NONE),
        "Khả dụng / Availability",
        _Q('code:tslcd_node_availability:ratio_1d{code="$code"}', legend="1 ngày / 1 day", instant=True,
           expect=Expect(labels=("code",), bounds=(0.0, 1.0))),
        _Q('code:tslcd_node_availability:ratio_30d{code="$code"}', legend="30 ngày / 30 days", instant=True,
           expect=Expect(labels=("code",), bounds=(0.0, 1.0)))))
    d = d.with_panel(b.panel(
        stat.Panel().reduce_options(_last()).span(4).height(5).decimals(0).graph_mode(cm.BigValueGraphMode.NONE)
        .thresholds(_thresholds((None, "green"), (6, "orange"))),
        "Đổi trạng thái / State changes",
        _Q('increase(tslcd_node_state_changes_total{code="$code"}[$__range])', legend="trong khoảng / in range",
           instant=True, expect=Expect(labels=("code",), bounds=(0.0, 1e6))),
        _Q('tslcd_node_flapping{code="$code"}', legend="chập chờn / flapping", instant=True,
           expect=Expect(labels=("code",), bounds=(0.0, 1.0)))))

    d = d.with_panel(b.panel(
        statetimeline.Panel().span(24).height(5).mappings(_state_mappings()).show_value(cm.VisibilityMode.NEVER)
        .merge_values(True).legend(cb.VizLegendOptions().show_legend(False)).thresholds(_thresholds((None, "text"))),
        "Lịch sử trạng thái / State history",
        _Q(state_one, legend="{{code}}", expect=Expect(labels=("code",), bounds=(0.0, 5.0)))))
    d = d.with_panel(b.panel(
        timeseries.Panel().span(12).height(8).unit("s").min(0)
        .legend(cb.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.LIST)
                .placement(cm.LegendPlacement.BOTTOM)),
        "Thời gian phản hồi / Round trip",
        _Q('tslcd_icmp_rtt_seconds{code="$code"}', legend="trung bình / mean", expect=one),
        _Q('tslcd_icmp_rtt_min_seconds{code="$code"}', legend="nhỏ nhất / min", expect=one),
        _Q('tslcd_icmp_rtt_max_seconds{code="$code"}', legend="lớn nhất / max", expect=one),
        _Q('tslcd_icmp_jitter_seconds{code="$code"}', legend="jitter", expect=one)))
    d = d.with_panel(b.panel(
        timeseries.Panel().span(12).height(8).unit("percentunit").min(0).max(1)
        .draw_style(cm.GraphDrawStyle.BARS).fill_opacity(60),
        "Mất gói / Packet loss",
        _Q('tslcd_icmp_packet_loss_ratio{code="$code"}', legend="mất gói / loss",
           expect=Expect(labels=("code",), bounds=(0.0, 1.0)))))

    snmp = Expect(labels=("code",), pending=SNMP_ONLY, bounds=(0.0, float("inf")))
    flag = Expect(labels=("code",), pending=SNMP_ONLY, bounds=(0.0, 1.0))
    d = d.with_panel(b.panel(
        stat.Panel().reduce_options(_last()).span(6).height(6).graph_mode(cm.BigValueGraphMode.NONE)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .mappings([dm.ValueMap(options={"0": dm.ValueMappingResult(text="SNMP lỗi / down", color="red", index=0),
                                        "1": dm.ValueMappingResult(text="SNMP OK", color="green", index=1)})])
        .override_by_query("B", [dm.DynamicConfigValue(id_val="mappings", value=[
            {"type": "value", "options": {
                "0": {"text": "ping và SNMP khớp / ping and SNMP agree", "color": "green", "index": 0},
                "1": {"text": "chỉ trả lời ping / answers ping only", "color": "orange", "index": 1}}}])]),
        "Trạng thái SNMP / SNMP status",
        _Q('tslcd_snmp_up{code="$code"}', legend="SNMP", instant=True, expect=flag),
        _Q('tslcd_snmp_ping_only{code="$code"}', legend="ping / SNMP", instant=True, expect=flag)))
    d = d.with_panel(b.panel(
        timeseries.Panel().span(12).height(6).unit("s").min(0),
        "Thời gian hoạt động / Uptime (sysUpTime)",
        _Q('tslcd_snmp_sys_uptime_seconds{code="$code"}', legend="uptime", expect=snmp)))
    d = d.with_panel(b.panel(
        stat.Panel().reduce_options(_last()).span(6).height(6).decimals(0).graph_mode(cm.BigValueGraphMode.NONE)
        .thresholds(_thresholds((None, "green"), (1, "orange"))),
        "Khởi động lại / Reboots",
        _Q('increase(tslcd_node_reboots_total{code="$code"}[$__range])', legend="trong khoảng / in range",
           instant=True, expect=snmp)))
    d = d.with_panel(b.panel(
        timeseries.Panel().span(16).height(8).unit("bps").min(0),
        "Lưu lượng uplink / Uplink traffic",
        _Q('rate(tslcd_uplink_receive_bytes_total{code="$code"}[$__rate_interval]) * 8', legend="vào / in",
           expect=snmp),
        _Q('rate(tslcd_uplink_transmit_bytes_total{code="$code"}[$__rate_interval]) * 8', legend="ra / out",
           expect=snmp)))
    d = d.with_panel(b.panel(
        timeseries.Panel().span(8).height(8).min(0),
        "Uplink: trạng thái, lỗi / status, errors",
        _Q('tslcd_uplink_oper_up{code="$code"}', legend="up (1) / down (0)", expect=flag),
        _Q('rate(tslcd_uplink_errors_total{code="$code"}[$__rate_interval])', legend="lỗi / errors {{direction}}",
           expect=Expect(labels=("code", "direction"), pending=SNMP_ONLY, bounds=(0.0, float("inf"))))))
    return d, b.checks


def national_overview() -> tuple[db.Dashboard, list[QueryCheck]]:
    """The national row, on the central Prometheus (deploy/prometheus/national): the nation's connection rate
    and each province's, from the communes counted by every poller and summed (never a mean of rates)."""
    b = _Board("tslcd-national")
    d = (db.Dashboard("TSLCD: toàn quốc / national view").uid(b.uid)
         .tags(["tslcd"]).refresh("1m").time("now-24h", "now").timezone("browser")
         .description("Tỷ lệ xã/phường kết nối của cả nước và từng tỉnh, từ số xã/phường mà mọi máy giám sát đếm, "
                      "cộng lại (không lấy trung bình các tỷ lệ). Prometheus trung tâm: deploy/prometheus/national. "
                      "The nation's and each province's connection rate, from the communes every poller counts, "
                      "summed (never a mean of rates); on the central Prometheus of deploy/prometheus/national.")
         .with_variable(_datasource_var()))
    d = d.with_row(b.row("Toàn quốc / National"))
    ratio = Expect(bounds=(0.0, 1.0))
    count = Expect(bounds=(0.0, 1e6))
    d = d.with_panel(b.panel(
        _rate_gauge("Xã/phường đang kết nối / tất cả xã/phường đang hoạt động của các tỉnh, kể cả chưa có đường "
                    "truyền. Connected communes / all active communes of the provinces, provisioned or not."),
        "Tỷ lệ kết nối toàn quốc / National connection rate",
        _Q("national:tslcd_connection_rate:ratio", legend="toàn quốc / national", instant=True, expect=ratio)))
    d = d.with_panel(b.panel(
        stat.Panel().reduce_options(_last()).span(6).height(8).unit("none").decimals(0)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("text"))
        .description("Số tỉnh có số liệu lúc này: một tỉnh vắng (máy giám sát hoặc Prometheus của tỉnh ngừng) "
                     "không được tính, xem cảnh báo TslcdNationalCountsMissing. Provinces reporting now: a missing "
                     "one is left out of the national figures (alert TslcdNationalCountsMissing)."),
        "Xã/phường toàn quốc / Communes, national",
        _Q("national:tslcd_communes_connected:sum", legend="kết nối / connected", instant=True, expect=count),
        _Q("national:tslcd_communes_provisioned:sum", legend="có đường truyền / provisioned", instant=True,
           expect=count),
        _Q("national:tslcd_communes:sum", legend="tổng / total", instant=True, expect=count),
        _Q("national:tslcd_provinces_reporting:count", legend="tỉnh có số liệu / provinces reporting",
           instant=True, expect=count)))
    by_province = Expect(labels=("province",), bounds=(0.0, 1e6))
    d = d.with_panel(b.panel(
        table.Panel().span(12).height(8)
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True},
            "indexByName": {"province": 0, "Value #A": 1, "Value #B": 2, "Value #C": 3, "Value #D": 4},
            "renameByName": {"province": "Tỉnh / Province", "Value #A": "Tỷ lệ / Rate",
                             "Value #B": "Kết nối / Connected", "Value #C": "Có đường truyền / Provisioned",
                             "Value #D": "Tổng / Communes"}}))
        .override_by_name("Tỷ lệ / Rate", [
            dm.DynamicConfigValue(id_val="unit", value="percentunit"),
            dm.DynamicConfigValue(id_val="decimals", value=1)]),
        "Theo tỉnh / By province",
        _Q("province:tslcd_connection_rate:ratio", instant=True, table=True,
           expect=Expect(labels=("province",), bounds=(0.0, 1.0))),
        _Q("province:tslcd_communes_connected:sum", instant=True, table=True, expect=by_province),
        _Q("province:tslcd_communes_provisioned:sum", instant=True, table=True, expect=by_province),
        _Q("province:tslcd_communes:sum", instant=True, table=True, expect=by_province)))
    d = d.with_panel(b.panel(
        _live_rate_graph(24, "Tỷ lệ tức thời do Prometheus trung tâm ghi lại, không phải tỷ lệ theo ngày (tslcd "
                         "audit). The live rate as the central Prometheus recorded it, not the daily rate (tslcd "
                         "audit)."),
        "Tỷ lệ kết nối tức thời, 30 ngày / Live connection rate, 30 days",
        _Q("national:tslcd_connection_rate:ratio", legend="toàn quốc / national", expect=ratio),
        _Q("province:tslcd_connection_rate:ratio", legend="{{province}}",
           expect=Expect(labels=("province",), bounds=(0.0, 1.0))),
        _Q("max(tslcd_connection_target_ratio)", legend="mục tiêu / target", expect=ratio)))
    return d, b.checks


BOARDS = {"tslcd-province": province_overview, "tslcd-node": node_detail, "tslcd-national": national_overview}
# Boards for the central Prometheus of the national view: their queries read its recording rules, which a
# province's Prometheus does not have (tests/test_federation.py checks them on a central one).
CENTRAL = frozenset({"tslcd-national"})


def render(builder: db.Dashboard) -> str:
    """The dashboard's JSON model as committed: sorted keys, two-space indent, final newline."""
    return JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False).encode(builder.build()) + "\n"


def dashboards() -> dict[str, tuple[str, list[QueryCheck]]]:
    """uid -> (JSON text, the checks of its queries)."""
    out = {}
    with warnings.catch_warnings():
        # The SDK steers towards dashboard schema v2, which Grafana loads only behind a feature
        # flag (12.x); v1, built here, is what file provisioning loads in every current Grafana.
        warnings.filterwarnings("ignore", "Prefer using dashboardv2", DeprecationWarning)
        for uid, make in BOARDS.items():
            builder, checks = make()
            out[uid] = (render(builder), checks)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="compare with the committed JSON instead of writing")
    args = p.parse_args(argv)
    stale = []
    for uid, (text, _) in dashboards().items():
        path = OUT / f"{uid}.json"
        json.loads(text)  # never write what is not JSON
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    for path in stale:
        print(f"{path}: differs from build.py's output; run: .venv/bin/python deploy/grafana/build.py",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
