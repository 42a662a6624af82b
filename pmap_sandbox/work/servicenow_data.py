"""In-memory ServiceNow tables and the encoded-query subset the Table API needs.

Records store every value as a string, as the Table API returns them; reference fields hold the
target ``sys_id``. Encoded queries support ``^`` (AND), ``^OR``, dot-walked fields
(``user.user_name``), the common operators and ``ORDERBY``/``ORDERBYDESC``. As on a default
instance (``glide.invalid_query.returns_no_rows`` false), a condition on an unknown field is
ignored rather than matching nothing: a known ServiceNow pitfall that clients must survive.
"""

from __future__ import annotations

import itertools
import operator
import re
import uuid
from collections.abc import Callable
from typing import Any

from pmap_sandbox.work._base import now

Record = dict[str, str]

REFERENCES: dict[str, dict[str, str]] = {  # table -> field -> referenced table
    "sys_user_has_role": {"user": "sys_user", "role": "sys_user_role", "granted_by": "sys_user_group",
                          "included_in_role": "sys_user_role"},
    "incident": {"caller_id": "sys_user", "opened_by": "sys_user", "resolved_by": "sys_user",
                 "closed_by": "sys_user", "assigned_to": "sys_user", "assignment_group": "sys_user_group"},
    "sys_user": {}, "sys_user_role": {}, "sys_user_group": {},
}
DISPLAY_FIELD = {"sys_user": "name", "sys_user_role": "name", "sys_user_group": "name", "incident": "number",
                 "sys_user_has_role": "sys_id"}
INCIDENT_STATES = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
# the base system's priority lookup rules (impact, urgency) -> priority: 1 Critical .. 5 Planning; the
# incident's priority field is read-only and follows them (ServiceNow docs "Define priority lookup rules")
PRIORITY_LOOKUP = {("1", "1"): "1", ("1", "2"): "2", ("1", "3"): "3", ("2", "1"): "2", ("2", "2"): "3",
                   ("2", "3"): "4", ("3", "1"): "3", ("3", "2"): "4", ("3", "3"): "5"}
INCIDENT_FIELDS = (
    "number", "short_description", "description", "state", "impact", "urgency", "priority", "category",
    "subcategory", "close_code", "close_notes", "correlation_id", "correlation_display", "caller_id",
    "opened_by", "opened_at", "resolved_by", "resolved_at", "closed_by", "closed_at", "assigned_to",
    "assignment_group", "active", "work_notes", "comments", "cmdb_ci", "incident_state",
)
_OPERATORS = ("ISNOTEMPTY", "ISEMPTY", "NOT LIKE", "NOT IN", "STARTSWITH", "ENDSWITH", "LIKE", "IN",
              "!=", ">=", "<=", "=", ">", "<")
_CONDITION = re.compile(r"^([A-Za-z0-9_.]+?)(" + "|".join(re.escape(o) for o in _OPERATORS) + r")(.*)$", re.S)


def sys_id() -> str:
    """A 32-hex ServiceNow ``sys_id``."""
    return uuid.uuid4().hex


def stamp() -> str:
    """``2024-05-01 10:00:00`` (ServiceNow's UTC date-time form in the Table API)."""
    return now().strftime("%Y-%m-%d %H:%M:%S")


def _system_fields(creator: str) -> Record:
    moment = stamp()
    return {"sys_id": sys_id(), "sys_created_on": moment, "sys_created_by": creator, "sys_updated_on": moment,
            "sys_updated_by": creator, "sys_mod_count": "0", "sys_tags": "", "sys_domain": "global"}


class Instance:
    """One simulated ServiceNow instance: tables of string records."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Record]] = {name: {} for name in REFERENCES}
        self._numbers = itertools.count(10001)
        self.roles = {name: self._insert("sys_user_role", {"name": name, "description": name}, "system")
                      for name in ("admin", "itil", "snc_internal", "user_admin", "security_admin")}
        self.ensure_user("admin", admin=True, noperm=False)

    def _insert(self, table: str, values: Record, creator: str) -> str:
        record = {**_system_fields(creator), **values}
        self.tables[table][record["sys_id"]] = record
        return record["sys_id"]

    def ensure_user(self, user_name: str, *, admin: bool, noperm: bool, security_admin: bool = False) -> Record:
        """The ``sys_user`` row of ``user_name``, created with roles fitting the scenario on first use.

        ``security_admin`` grants that role directly (beside ``itil`` unless ``noperm``): a high-privilege
        role a least-privilege check must flag even on an account without ``admin``.
        """
        for record in self.tables["sys_user"].values():
            if record["user_name"] == user_name:
                return record
        first = user_name.split("@")[0].split(".")[0].title()
        uid = self._insert("sys_user", {
            "user_name": user_name, "name": f"{first} Integration", "first_name": first,
            "last_name": "Integration", "email": f"{user_name}@example.com" if "@" not in user_name else user_name,
            "active": "true", "locked_out": "false", "web_service_access_only": "true", "time_zone": "UTC",
        }, "admin")
        grants = [("snc_internal", "false")]
        if admin:
            grants += [("admin", "false"), ("itil", "true"), ("user_admin", "true")]
        elif not noperm:
            grants.append(("itil", "false"))
        if security_admin and not admin:
            grants.append(("security_admin", "false"))
        for role, inherited in grants:
            self._insert("sys_user_has_role", {
                "user": uid, "role": self.roles[role], "inherited": inherited, "state": "active",
                "granted_by": "", "included_in_role": self.roles["admin"] if inherited == "true" else "",
            }, "admin")
        return self.tables["sys_user"][uid]

    def insert_incident(self, values: dict[str, Any], creator: str, creator_id: str) -> Record:
        """A new incident from client values (unknown fields ignored, as the Table API does)."""
        record = {f: "" for f in INCIDENT_FIELDS}
        record.update({k: as_str(v) for k, v in values.items() if k in INCIDENT_FIELDS})
        record.update({"number": f"INC{next(self._numbers):07d}", "opened_by": creator_id,
                       "opened_at": stamp(), "active": "true"})
        record["state"] = record["state"] or "1"
        record["incident_state"] = record["state"]
        for field, default in (("impact", "3"), ("urgency", "3")):
            record[field] = record[field] or default
        record["priority"] = priority_of(record)
        record["work_notes"] = record["comments"] = ""  # journal fields are write-only in the Table API
        sid = self._insert("incident", record, creator)
        return self.tables["incident"][sid]

    def display(self, table: str, sid: str) -> str:
        """The display value of a referenced record."""
        target = self.tables.get(table, {}).get(sid)
        return target.get(DISPLAY_FIELD.get(table, "sys_id"), "") if target else ""

    def resolve(self, table: str, record: Record, path: str) -> str | None:
        """The value at a dotted path (``user.user_name``); None when a field does not exist."""
        head, _, rest = path.partition(".")
        if head not in record:
            return None
        if not rest:
            return record[head]
        target_table = REFERENCES.get(table, {}).get(head)
        if target_table is None:
            return None
        target = self.tables[target_table].get(record[head])
        return self.resolve(target_table, target, rest) if target else ""

    def query(self, table: str, encoded: str) -> list[Record]:
        """The records of ``table`` matching an encoded query, in query order."""
        records = list(self.tables[table].values())
        groups: list[list[Callable[[Record], bool | None]]] = []
        order: list[tuple[str, bool]] = []
        for part in [p for p in encoded.split("^") if p] if encoded else []:
            if part.startswith(("ORDERBYDESC", "ORDERBY")):
                desc = part.startswith("ORDERBYDESC")
                order.append((part[len("ORDERBYDESC" if desc else "ORDERBY"):], desc))
                continue
            is_or = part.startswith("OR") and _CONDITION.match(part[2:]) is not None and groups
            test = _condition(self, table, part[2:] if is_or else part)
            if is_or:
                groups[-1].append(test)
            else:
                groups.append([test])
        matched = [r for r in records if all(_any_true(g, r) for g in groups)]
        for field, desc in reversed(order):  # stable sorts, last key first
            matched.sort(key=operator.methodcaller("get", field, ""), reverse=desc)
        return matched


def _any_true(tests: list[Callable[[Record], bool | None]], record: Record) -> bool:
    outcomes = [t(record) for t in tests]
    known = [o for o in outcomes if o is not None]
    return True if not known else any(known)  # unknown-field conditions are ignored


def _condition(instance: Instance, table: str, text: str) -> Callable[[Record], bool | None]:
    match = _CONDITION.match(text)
    if match is None:
        return lambda record: None
    path, op, expected = match.groups()

    def test(record: Record) -> bool | None:
        value = instance.resolve(table, record, path)
        if value is None:
            return None
        choices = expected.split(",")
        checks = {
            "=": value == expected, "!=": value != expected, "LIKE": expected.lower() in value.lower(),
            "NOT LIKE": expected.lower() not in value.lower(), "STARTSWITH": value.startswith(expected),
            "ENDSWITH": value.endswith(expected), "IN": value in choices, "NOT IN": value not in choices,
            "ISEMPTY": value == "", "ISNOTEMPTY": value != "", ">": value > expected, "<": value < expected,
            ">=": value >= expected, "<=": value <= expected,
        }
        return checks[op]

    return test


def priority_of(record: Record) -> str:
    """The priority the base lookup rules give the record's impact and urgency (5 Planning otherwise)."""
    return PRIORITY_LOOKUP.get((record.get("impact", ""), record.get("urgency", "")), "5")


def as_str(value: Any) -> str:
    """A client value as the string the Table API stores (booleans lower-case, references by value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # a reference given as {"value": sys_id}
        return str(value.get("value", ""))
    return "" if value is None else str(value)
