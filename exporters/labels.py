"""Every word a person reads, in Vietnamese (and English where the output has both): pages, email, audit.

Keyed by the bounded values of the code (states, SNMP reasons, how an outage ended), so a
new value missing here shows as itself, never as a crash.
"""

from __future__ import annotations

from monitor.core.history import ENDED_DAY_END, ENDED_NOT_OBSERVED
from monitor.core.snmp import Reason

# A node's state on the status page (and "no_circuit": a commune without a TSLCD circuit yet).
STATE_LABELS = {
    "up": "hoạt động",
    "down": "mất kết nối",
    "unreachable": "không tới được",
    "unknown": "chưa rõ",
    "maintenance": "bảo trì",
    "no_circuit": "chưa có đường truyền",
}

# What each SNMP reason means, for the status page, next to the precise detail.
REASON_LABELS_VI: dict[str, str] = {
    Reason.OK: "SNMP bình thường",
    Reason.TIMEOUT: "không trả lời SNMP",
    Reason.WRONG_COMMUNITY: "sai community SNMP",
    Reason.AUTH_FAILURE: "sai khóa xác thực SNMPv3",
    Reason.UNKNOWN_USER: "không có người dùng SNMPv3",
    Reason.PRIVACY_FAILURE: "sai khóa mã hóa SNMPv3",
    Reason.V3_REPORT: "thiết bị từ chối SNMPv3",
    Reason.NO_SUCH_OBJECT: "thiếu đối tượng MIB",
    Reason.UPLINK_NOT_FOUND: "không thấy cổng uplink",
    Reason.UNEXPECTED_TYPE: "kiểu dữ liệu lạ",
    Reason.AGENT_ERROR: "thiết bị báo lỗi SNMP",
    Reason.LOCAL_ERROR: "lỗi phía máy giám sát",
    Reason.NOT_POLLED: "không hỏi SNMP",
}

# Why a node is cut off (monitor.core.causes), Vietnamese / English.
CAUSE_LABELS = {
    "upstream": ("do nút phía trên", "upstream node"),
    "power": ("mất điện / khởi động lại", "power or reboot"),
    "line": ("đứt đường truyền", "line"),
    "filtered": ("bị chặn ping (SNMP vẫn trả lời)", "ping filtered (SNMP answers)"),
    "unknown": ("chưa rõ nguyên nhân", "cause unknown"),
}

# How an outage ended, as the report says it.
ENDED_BY = {
    "up": "up",
    "maintenance": "maintenance window",
    "unknown": "unknown (no longer monitored)",
    ENDED_DAY_END: "still out at the end of the period",
    ENDED_NOT_OBSERVED: "monitor stopped observing",
}

WEEKDAYS = {
    "vi": ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")

# Every word of the daily email, by language. Operators' templates get the same dict as ``t``.
EMAIL: dict[str, dict[str, str]] = {
    "vi": {
        "subject": "[TSLCD {province}] Ngày {date}: {rate} xã kết nối (mục tiêu {target})",
        "network": "Mạng truyền số liệu chuyên dùng",
        "title": "Báo cáo kết nối UBND cấp xã",
        "province": "tỉnh {province}",
        "day": "{weekday}, ngày {date}",
        "connected": "Kết nối trong ngày",
        "in_use": "Kết nối và có sử dụng",
        "provisioned": "Đã có đường truyền",
        "of_communes": "{count}/{total} xã",
        "target": "mục tiêu {target}",
        "change": "{change} so với hôm trước",
        "change_none": "chưa có số liệu hôm trước",
        "unchanged": "không đổi so với hôm trước",
        "pp": "điểm %",
        "gap": "Còn {count} xã chưa kết nối để đạt mục tiêu {target}.",
        "gap_met": "Đạt mục tiêu {target}: mọi xã cần thiết đều kết nối.",
        "gap_no_data": "Không có số liệu: hệ thống giám sát không quan sát được xã nào trong ngày.",
        "ipv6": "Sẵn sàng IPv6: {value} ({count}/{total} xã có địa chỉ IPv6 trả lời trong ngày)",
        "no_traffic": "chưa đo được: thiếu số liệu lưu lượng (SNMP)",
        "coverage_warn": "Hệ thống giám sát chỉ quan sát được {coverage} thời gian trong ngày. Phần còn lại là "
                         "“chưa rõ”: không tính là có kết nối, cũng không tính là mất kết nối.",
        "trend": "Diễn biến {days} ngày",
        "legend_connected": "tỷ lệ kết nối",
        "legend_in_use": "kết nối và có sử dụng",
        "legend_idle": "kết nối, chưa sử dụng",
        "legend_below": "dưới mục tiêu",
        "legend_none": "không có số liệu",
        "trend_summary": "Trung bình {mean} · thấp nhất {low} ({low_day}) · cao nhất {high} ({high_day}) · "
                         "đạt mục tiêu {met}/{days} ngày",
        "trend_empty": "Chưa có số liệu của những ngày trước.",
        "areas": "Theo khu vực",
        "area": "Khu vực",
        "communes": "Số xã",
        "rate": "Tỷ lệ kết nối",
        "connected_short": "Kết nối",
        "rate_short": "Tỷ lệ",
        "in_use_short": "Có sử dụng",
        "not_connected": "Xã chưa kết nối trong ngày",
        "not_connected_none": "Không có: mọi xã đều kết nối.",
        "code": "Mã",
        "name": "Tên",
        "reason": "Lý do",
        "downtime": "Mất kết nối",
        "no_circuit": "chưa có đường truyền",
        "not_observed": "không có số liệu giám sát",
        "low_availability": "sẵn sàng {availability}",
        "not_in_use": "Xã có kết nối nhưng chưa sử dụng",
        "not_in_use_none": "Không có: mọi xã có kết nối đều có lưu lượng.",
        "traffic": "Lưu lượng",
        "traffic_unknown": "không có số liệu",
        "outages": "Các lần mất kết nối trong ngày (dài nhất trước)",
        "outages_none": "Không có lần mất kết nối nào.",
        "node": "Nút",
        "from": "Từ",
        "to": "Đến",
        "duration": "Thời lượng",
        "state": "Tình trạng",
        "down": "mất kết nối",
        "unreachable": "không tới được",
        "behind": "sau nút {node}",
        "by_cause": "Theo nguyên nhân",
        "with_exclusions": "{rate} với {count} sự cố được loại trừ đã duyệt (chưa loại trừ: {measured})",
        "excluded": "loại trừ khỏi độ sẵn sàng: {reason} (duyệt: {by})",
        "maintenance": "Bảo trì trong ngày (không tính vào độ sẵn sàng)",
        "maint_by": "khai báo bởi {by}",
        "maint_config": "khai báo trong config.yaml",
        "maint_approved": "duyệt bởi {by} (khai báo sau khi đã bắt đầu)",
        "maint_behind": "và các nút phía sau",
        "carrier": "Nhà mạng",
        "began": "bắt đầu {at}",
        "ended_day_end": "còn tiếp sang ngày sau",
        "ended_not_observed": "giám sát dừng khi đang mất",
        "kind_core": "nút lõi",
        "kind_aggregation": "nút tập trung",
        "reboots": "Thiết bị khởi động lại",
        "reboots_count": "Số lần",
        "reboots_none": "Không có thiết bị nào khởi động lại (theo SNMP).",
        "partial": "Xã giám sát không trọn ngày",
        "partial_intro": "Các xã sau được quan sát ít hơn phần còn lại của mạng; thời gian không quan sát là "
                         "“chưa rõ” và không tính vào độ sẵn sàng.",
        "observed": "Quan sát được",
        "unknown": "Chưa rõ",
        "more": "… và {count} mục khác (xem trên trang theo dõi).",
        "definitions": "Định nghĩa và ngưỡng",
        "def_rate": "Tỷ lệ kết nối = số xã kết nối trong ngày / tổng số xã, phường có trong danh mục ngày đó "
                    "(kể cả xã chưa có đường truyền), so với mục tiêu {target}.",
        "def_connected": "Kết nối trong ngày: độ sẵn sàng ≥ {min_availability}. Độ sẵn sàng = thời gian hoạt động / "
                         "(hoạt động + mất kết nối + không tới được); thời gian chưa rõ và bảo trì không tính.",
        "def_in_use": "Có sử dụng: kết nối trong ngày và lưu lượng đường lên ≥ {min_bytes}.",
        "def_provisioned": "Đã có đường truyền: xã có địa chỉ mạng TSLCD trong danh mục (chỉ tiêu chính thức có thể "
                           "hiểu theo nghĩa này; báo cáo nêu cả hai).",
        "def_unreachable": "Không tới được: nút phía trên (nút tập trung) mất kết nối nên không đo được xã.",
        "def_exclusions": "Loại trừ: một sự cố chỉ được loại khỏi độ sẵn sàng khi có người duyệt; các số liệu bị ảnh "
                          "hưởng luôn được nêu hai lần, theo đo đạc và có tính các loại trừ đã duyệt.",
        "def_ipv6": "Sẵn sàng IPv6 trong ngày: số xã có địa chỉ IPv6 trả lời ít nhất một lần trong ngày / số xã có "
                    "số liệu (như tỷ lệ kết nối).",
        "def_causes": "Nguyên nhân, từ những gì ICMP và SNMP thấy: mất điện / khởi động lại (thiết bị khởi động "
                      "lại trong hoặc ngay sau sự cố); đứt đường truyền (cổng đường lên báo ngừng, hoặc mất cả ICMP "
                      "lẫn SNMP khi nút phía trên vẫn hoạt động); bị chặn ping (SNMP vẫn trả lời); do nút phía trên; "
                      "chưa rõ (không đủ dữ kiện).",
        "sealed": "Số liệu ngày {date} đã niêm phong, mã SHA-256 {digest}.",
        "not_sealed": "Số liệu ngày {date} chưa niêm phong (tính từ dữ liệu gốc).",
        "dashboard": "Trang theo dõi",
        "generated": "Thư tự động của tslcd-monitor, lập lúc {at} ({tz}). Vui lòng không trả lời thư này.",
    },
    "en": {
        "subject": "[TSLCD {province}] {date}: {rate} of communes connected (target {target})",
        "network": "Dedicated government data network (TSLCD)",
        "title": "Commune connection report",
        "province": "{province} province",
        "day": "{weekday} {date}",
        "connected": "Connected that day",
        "in_use": "Connected and in use",
        "provisioned": "Provisioned (circuit)",
        "of_communes": "{count} of {total} communes",
        "target": "target {target}",
        "change": "{change} on the day before",
        "change_none": "no data for the day before",
        "unchanged": "unchanged on the day before",
        "pp": "pp",
        "gap": "{count} more communes must connect to reach the {target} target.",
        "gap_met": "Target {target} met.",
        "gap_no_data": "No data: the monitor observed no commune that day.",
        "ipv6": "IPv6 readiness: {value} ({count}/{total} communes whose IPv6 address answered that day)",
        "no_traffic": "not measured: no uplink traffic figures (SNMP)",
        "coverage_warn": "The monitor observed only {coverage} of the day. The rest is \"unknown\": counted neither "
                         "as connected nor as disconnected.",
        "trend": "Last {days} days",
        "legend_connected": "connection rate",
        "legend_in_use": "connected and in use",
        "legend_idle": "connected, idle",
        "legend_below": "below target",
        "legend_none": "no data",
        "trend_summary": "Mean {mean} · lowest {low} ({low_day}) · highest {high} ({high_day}) · "
                         "target met on {met} of {days} days",
        "trend_empty": "No data for the previous days yet.",
        "areas": "By area",
        "area": "Area",
        "communes": "Communes",
        "rate": "Connection rate",
        "connected_short": "Connected",
        "rate_short": "Rate",
        "in_use_short": "In use",
        "not_connected": "Communes not connected that day",
        "not_connected_none": "None: every commune was connected.",
        "code": "Code",
        "name": "Name",
        "reason": "Why",
        "downtime": "Downtime",
        "no_circuit": "no circuit yet",
        "not_observed": "not observed by the monitor",
        "low_availability": "availability {availability}",
        "not_in_use": "Communes connected but not in use",
        "not_in_use_none": "None: every connected commune carried traffic.",
        "traffic": "Traffic",
        "traffic_unknown": "no figures",
        "outages": "Outages that day (longest first)",
        "outages_none": "No outage.",
        "node": "Node",
        "from": "From",
        "to": "To",
        "duration": "Duration",
        "state": "State",
        "down": "down",
        "unreachable": "unreachable",
        "behind": "behind {node}",
        "by_cause": "By cause",
        "with_exclusions": "{rate} with {count} approved exclusion(s) (as measured: {measured})",
        "excluded": "excluded from availability: {reason} (approved by {by})",
        "maintenance": "Maintenance that day (left out of availability)",
        "maint_by": "declared by {by}",
        "maint_config": "declared in config.yaml",
        "maint_approved": "approved by {by} (declared after it began)",
        "maint_behind": "and the nodes behind",
        "carrier": "Carrier",
        "began": "began {at}",
        "ended_day_end": "goes on into the next day",
        "ended_not_observed": "monitor stopped observing",
        "kind_core": "core node",
        "kind_aggregation": "aggregation node",
        "reboots": "Device restarts",
        "reboots_count": "Restarts",
        "reboots_none": "No device restarted (per SNMP).",
        "partial": "Communes observed for part of the day",
        "partial_intro": "These communes were observed for less of the day than the rest of the network; the "
                         "time not observed is \"unknown\" and not in their availability.",
        "observed": "Observed",
        "unknown": "Unknown",
        "more": "… and {count} more (see the dashboard).",
        "definitions": "Definitions and thresholds",
        "def_rate": "Connection rate = communes connected that day / all communes and wards in the inventory on "
                    "that day (with or without a circuit), against the {target} target.",
        "def_connected": "Connected on a day: availability ≥ {min_availability}. Availability = up / (up + down + "
                         "unreachable); unknown and maintenance time are left out.",
        "def_in_use": "In use: connected that day and uplink traffic ≥ {min_bytes}.",
        "def_provisioned": "Provisioned: the commune has a TSLCD circuit (an address) in the inventory; the official "
                           "indicator may mean this, so both are shown.",
        "def_unreachable": "Unreachable: an upstream (aggregation) node was down, so the commune could not be "
                           "measured.",
        "def_exclusions": "Exclusions: an outage is left out of availability only with a named approver; every "
                          "figure it changes is given twice, as measured and with the approved exclusions.",
        "def_ipv6": "IPv6 readiness on a day: communes whose IPv6 address answered at least once that day / communes "
                    "with data (as for the connection rate).",
        "def_causes": "Causes, from what ICMP and SNMP saw: power or reboot (the router restarted during the outage "
                      "or right after it); line (its uplink read down, or ICMP and SNMP both lost with the node "
                      "upstream up); ping filtered (SNMP still answered); upstream node; unknown (not enough "
                      "evidence).",
        "sealed": "The figures of {date} are sealed, SHA-256 {digest}.",
        "not_sealed": "The figures of {date} are not sealed yet (computed from raw data).",
        "dashboard": "Dashboard",
        "generated": "Sent automatically by tslcd-monitor at {at} ({tz}). Please do not reply.",
    },
}

