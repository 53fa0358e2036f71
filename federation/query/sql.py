"""Turn SQL text in cityfed's subset into a `FederatedQuery`.

DuckDB parses the text (`json_serialize_sql`), so what is accepted is DuckDB SQL by
construction and means what DuckDB means; this module walks the syntax tree and refuses every
node it does not know, naming the part that is not supported. The text itself goes to DuckDB
only as a bound parameter of the parser function, on a sandboxed in-memory connection.

The subset: SELECT over one dataset; count(*), count, sum, avg, min, max; WHERE with
comparisons, IN, BETWEEN, IS [NOT] NULL, AND/OR/NOT and arithmetic (+ - * / // %);
year, month, day, hour, date_trunc, date_diff; typed DATE/TIMESTAMP literals; GROUP BY
expressions, positions or output names; HAVING, which may use output names; ORDER BY
expressions, positions or output names, ASC/DESC, NULLS FIRST/LAST; LIMIT and OFFSET.

Names of datasets, columns and output columns match whatever their case, as in DuckDB. Where a
name is both a column and an output name, GROUP BY and HAVING mean the column and ORDER BY the
output, as in DuckDB.
"""

from __future__ import annotations

import functools
import json
import threading
from decimal import Decimal, InvalidOperation
from typing import Any

import duckdb
from cityfed.v1 import query_pb2

from federation.errors import InvalidQuery, TooLarge
from federation.query.compile import as_number
from federation.query.datasets import DATASETS, Column, Dataset
from federation.query.plan import MAX_EXPRESSION_DEPTH, check_query
from federation.query.sandbox import sandboxed_memory_connection
from federation.query.typecheck import QueryTypeError
from federation.query.values import to_value

F = query_pb2.Function
A = query_pb2.AggregateFunction

MAX_SQL_CHARS = 64 * 1024

_COMPARISONS = {
    "COMPARE_EQUAL": F.FUNCTION_EQUAL,
    "COMPARE_NOTEQUAL": F.FUNCTION_NOT_EQUAL,
    "COMPARE_LESSTHAN": F.FUNCTION_LESS,
    "COMPARE_LESSTHANOREQUALTO": F.FUNCTION_LESS_OR_EQUAL,
    "COMPARE_GREATERTHAN": F.FUNCTION_GREATER,
    "COMPARE_GREATERTHANOREQUALTO": F.FUNCTION_GREATER_OR_EQUAL,
}
_ARITHMETIC = {
    "+": F.FUNCTION_ADD,
    "-": F.FUNCTION_SUBTRACT,
    "*": F.FUNCTION_MULTIPLY,
    "/": F.FUNCTION_DIVIDE,
    "//": F.FUNCTION_INTEGER_DIVIDE,
    "%": F.FUNCTION_MODULO,
}
_SCALAR_FUNCTIONS = {
    "year": F.FUNCTION_YEAR,
    "month": F.FUNCTION_MONTH,
    "day": F.FUNCTION_DAY,
    "hour": F.FUNCTION_HOUR,
    "date_trunc": F.FUNCTION_DATE_TRUNC,
    "datetrunc": F.FUNCTION_DATE_TRUNC,
    "date_diff": F.FUNCTION_DATE_DIFF,
    "datediff": F.FUNCTION_DATE_DIFF,
}
_AGGREGATES = {
    "count_star": A.AGGREGATE_FUNCTION_COUNT_STAR,
    "count": A.AGGREGATE_FUNCTION_COUNT,
    "sum": A.AGGREGATE_FUNCTION_SUM,
    "avg": A.AGGREGATE_FUNCTION_AVG,
    "mean": A.AGGREGATE_FUNCTION_AVG,
    "min": A.AGGREGATE_FUNCTION_MIN,
    "max": A.AGGREGATE_FUNCTION_MAX,
}
_TYPED_LITERALS = {"DATE": "date", "TIMESTAMP": "timestamp"}
# DuckDB parses `INTERVAL 1 DAY` as to_days(1), and so on for each unit.
_INTERVAL_FUNCTIONS = frozenset({
    "to_years", "to_months", "to_days", "to_hours", "to_minutes", "to_seconds",
    "to_milliseconds", "to_microseconds", "to_weeks", "to_quarters", "to_decades",
    "to_centuries", "to_millennia"})
INTERVAL_REFUSED = ("INTERVAL values are not supported: add or subtract an INTEGER number of "
                    "days to a DATE, or use date_diff('day', start, end) (or 'hour', 'week', …)")

_parser = threading.local()
_DATASETS_BY_NAME = {name.lower(): dataset for name, dataset in DATASETS.items()}


def parse_tree(sql: str) -> dict[str, Any]:
    """DuckDB's syntax tree of one SELECT statement."""
    if len(sql) > MAX_SQL_CHARS:
        raise TooLarge(f"the SQL text is {len(sql)} characters; the limit is {MAX_SQL_CHARS}")
    try:
        (serialized,) = _connection().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    except duckdb.Error:
        raise InvalidQuery("could not parse the SQL") from None
    try:
        tree = json.loads(serialized)
    except RecursionError:
        raise TooLarge("the SQL nests too deeply") from None
    if tree.get("error"):
        if "expression depth" in tree.get("error_message", ""):
            raise TooLarge("the SQL nests too deeply")
        raise InvalidQuery(_syntax_error(tree))
    statements = tree["statements"]
    if len(statements) != 1:
        raise InvalidQuery(f"send exactly one SELECT statement, not {len(statements)}")
    return statements[0]["node"]


def _connection() -> duckdb.DuckDBPyConnection:
    """This thread's sandboxed in-memory DuckDB, which parses the text and its literals."""
    if not hasattr(_parser, "connection"):
        _parser.connection = sandboxed_memory_connection()
    return _parser.connection


# DuckDB's parser messages that quote nothing of the text; any other names the token it stopped
# at, which may be a literal (an ID, a name), so only its position is given.
_FIXED_PARSER_MESSAGES = frozenset({
    "syntax error at end of input", "unterminated string literal",
    "unterminated quoted identifier", "unterminated quoted string", "unterminated /* comment",
})


def _syntax_error(tree: dict[str, Any]) -> str:
    message = str(tree.get("error_message", ""))
    if tree.get("error_type") != "parser":
        return "SQL syntax error: send exactly one plain SELECT statement"
    position = tree.get("position")
    where = f" at character {int(position) + 1}" if str(position).isdigit() else ""
    said = f": {message}" if message in _FIXED_PARSER_MESSAGES else ""
    return f"SQL syntax error{where}{said}"


def parse_query(sql: str) -> query_pb2.FederatedQuery:
    """Parse SQL in the supported subset into a checked `FederatedQuery`. Parsing is pure, so
    the same text asked again (a dashboard's questions) is served from a small cache."""
    return query_pb2.FederatedQuery.FromString(_parsed(sql))


@functools.lru_cache(maxsize=256)
def _parsed(sql: str) -> bytes:
    tree = parse_tree(sql)
    try:
        query = _QueryBuilder(sql).build(tree)
    except RecursionError:
        raise TooLarge("the SQL nests too deeply") from None
    try:
        check_query(query)
    except QueryTypeError as error:
        raise _located(error, sql, tree) from None
    return query.SerializeToString()


def _located(error: QueryTypeError, sql: str, tree: dict[str, Any]) -> QueryTypeError:
    """The type error, pointing at where its expression starts in the SQL text. The query is
    built again, this time noting where each expression came from (only on this error path)."""
    if error.node is None:
        return error
    builder = _QueryBuilder(sql, locate=True)
    builder.build(tree)
    position = builder.locations.get(error.node.SerializeToString(deterministic=True))
    if position is None:
        return error
    return QueryTypeError(f"{error} (at character {position + 1} of the SQL)", error.node)


class _QueryBuilder:
    def __init__(self, sql: str, locate: bool = False) -> None:
        self.sql = sql
        self.dataset: Dataset | None = None
        self.plan = query_pb2.AggregatePlan()
        self.group_keys: list[query_pb2.Expression] = []
        self.aggregates: list[query_pb2.Aggregate] = []
        # The output columns (SELECT list), once built: HAVING and ORDER BY may name them.
        self.outputs: list[query_pb2.OutputColumn] = []
        self.depth = 0
        # With `locate`: each expression built (as bytes), and where its text starts in the SQL.
        self.locations: dict[bytes, int] | None = {} if locate else None

    def build(self, node: dict[str, Any]) -> query_pb2.FederatedQuery:
        if node.get("type") != "SELECT_NODE":
            raise InvalidQuery(f"only a plain SELECT is supported, not {_kind(node)}")
        if node.get("cte_map", {}).get("map"):
            raise InvalidQuery("WITH (common table expressions) is not supported")
        for clause in ("qualify", "sample"):
            if node.get(clause):
                raise InvalidQuery(f"{clause.upper()} is not supported")
        if node.get("group_sets") and len(node["group_sets"]) > 1:
            raise InvalidQuery("GROUPING SETS, ROLLUP and CUBE are not supported")
        if node.get("aggregate_handling") != "STANDARD_HANDLING":
            raise InvalidQuery("GROUP BY ALL is not supported; list the group keys")
        self.dataset = self._dataset(node.get("from_table"))
        self.plan.dataset = self.dataset.name
        if node.get("where_clause"):
            self.plan.filter.CopyFrom(self._row_expression(node["where_clause"], "WHERE"))

        select_list = node.get("select_list", [])
        names = [self._output_name(item, position)
                 for position, item in enumerate(select_list, start=1)]
        for item in node.get("group_expressions", []):
            self._add_group_key(item, select_list, names)

        query = query_pb2.FederatedQuery()
        for name, item in zip(names, select_list, strict=True):
            if item.get("class") == "STAR":
                raise InvalidQuery("SELECT * is not supported: name the group keys and aggregates")
            query.columns.add(name=name, expression=self._merged_expression(item, "SELECT"))
        self.outputs = list(query.columns)
        if node.get("having"):
            query.having.CopyFrom(self._merged_expression(node["having"], "HAVING"))
        for modifier in node.get("modifiers", []):
            self._apply_modifier(modifier, query, select_list)

        self.plan.group_by.extend(self.group_keys)
        self.plan.aggregates.extend(self.aggregates)
        query.plan.CopyFrom(self.plan)
        return query

    def _dataset(self, table: dict[str, Any] | None) -> Dataset:
        if not table or table.get("type") != "BASE_TABLE":
            found = _kind(table) if table else "no FROM clause"
            raise InvalidQuery(f"FROM must name one dataset (joins and subqueries are not "
                               f"supported), found {found}")
        if table.get("schema_name") or table.get("catalog_name"):
            raise InvalidQuery("name the dataset without a schema or catalog")
        if table.get("at_clause") or table.get("sample"):
            raise InvalidQuery("AT and TABLESAMPLE are not supported")
        dataset = _DATASETS_BY_NAME.get(table["table_name"].lower())
        if dataset is None:
            raise InvalidQuery(f"unknown dataset {table['table_name'][:64]!r}; known "
                               f"datasets: {', '.join(DATASETS)}")
        if table.get("alias"):
            self.table_alias = table["alias"]
        return dataset

    def _table_column(self, name: str) -> Column | None:
        """The dataset's column called `name`, whatever the case."""
        lowered = name.lower()
        return next((c for c in self.dataset.columns if c.name.lower() == lowered), None)

    def _output_name(self, item: dict[str, Any], position: int) -> str:
        if item.get("alias"):
            return item["alias"]
        if item.get("class") == "COLUMN_REF":
            column = self._table_column(item["column_names"][-1])  # DuckDB names it so
            return column.name if column is not None else item["column_names"][-1]
        start, length = item.get("query_location"), item.get("query_location_length")
        if isinstance(start, int) and isinstance(length, int) and length > 0:
            return self.sql[start:start + length]
        return f"column{position}"

    def _add_group_key(self, item: dict[str, Any], select_list, names: list[str]) -> None:
        position = _integer_constant(item)
        if position is not None:
            if not 1 <= position <= len(select_list):
                raise InvalidQuery(f"GROUP BY position {position} is not in the select list")
            item = select_list[position - 1]
        elif item.get("class") == "COLUMN_REF" and len(item["column_names"]) == 1:
            name = item["column_names"][0]
            position = _position_of(name, names)
            if self._table_column(name) is None and position is not None:
                item = select_list[position]
        key = self._row_expression(item, "GROUP BY")
        if key not in self.group_keys:
            self.group_keys.append(key)

    def _apply_modifier(self, modifier, query, select_list) -> None:
        kind = modifier.get("type")
        if kind == "ORDER_MODIFIER":
            for order in modifier["orders"]:
                key = query.order_by.add()
                key.expression.CopyFrom(self._order_expression(
                    order["expression"], query, select_list))
                key.descending = order["type"] == "DESCENDING"
                key.nulls_first = order["null_order"] == "NULLS FIRST"
        elif kind == "LIMIT_MODIFIER":
            if modifier.get("limit_type", "ROW_COUNT") != "ROW_COUNT":
                raise InvalidQuery("LIMIT as a percentage is not supported: give a number of "
                                   "rows")
            if modifier.get("limit") is not None:
                query.limit = self._count_constant(modifier["limit"], "LIMIT")
            if modifier.get("offset") is not None:
                query.offset = self._count_constant(modifier["offset"], "OFFSET")
        elif kind == "DISTINCT_MODIFIER":
            raise InvalidQuery("SELECT DISTINCT is not supported")
        else:
            raise InvalidQuery(f"{kind} is not supported")

    def _order_expression(self, item, query, select_list):
        position = _integer_constant(item)
        if position is not None:
            if not 1 <= position <= len(select_list):
                raise InvalidQuery(f"ORDER BY position {position} is not in the select list")
            return query.columns[position - 1].expression
        return self._merged_expression(item, "ORDER BY")

    def _count_constant(self, item: dict[str, Any], clause: str) -> int:
        value = _integer_constant(item)
        if value is None or value < 0:
            raise InvalidQuery(f"{clause} must be a non-negative integer constant")
        return value

    # Expressions evaluated per row, at the nodes.

    def _row_expression(self, item: dict[str, Any], clause: str) -> query_pb2.Expression:
        return self._expression(item, clause, merged=False)

    # Expressions evaluated per merged group, at the coordinator.

    def _merged_expression(self, item: dict[str, Any], clause: str) -> query_pb2.Expression:
        return self._expression(item, clause, merged=True)

    def _expression(self, item: dict[str, Any], clause: str, merged: bool) -> query_pb2.Expression:
        self.depth += 1
        try:
            if self.depth > MAX_EXPRESSION_DEPTH:
                raise TooLarge(f"expressions may nest at most {MAX_EXPRESSION_DEPTH} deep")
            expression = self._expression_at_depth(item, clause, merged)
        finally:
            self.depth -= 1
        if self.locations is not None and isinstance(item.get("query_location"), int):
            self.locations.setdefault(expression.SerializeToString(deterministic=True),
                                      item["query_location"])
        return expression

    def _expression_at_depth(self, item: dict[str, Any], clause: str,
                             merged: bool) -> query_pb2.Expression:
        if merged and item.get("class") == "COLUMN_REF":
            output = self._output_named(item, clause)
            if output is not None:
                return output
        if merged and item.get("class") != "CONSTANT":
            if item.get("class") == "FUNCTION" and item.get("function_name") in _AGGREGATES \
                    and not item.get("is_operator"):
                return self._aggregate_reference(item, clause)
            row_form = self._try_row_form(item)
            if row_form is not None and row_form in self.group_keys:
                return query_pb2.Expression(group_key=self.group_keys.index(row_form))
        kind = item.get("class")
        if kind == "COLUMN_REF":
            return self._column(item, clause, merged)
        if kind == "CONSTANT":
            return query_pb2.Expression(literal=_literal(item["literal"]))
        if kind == "CAST":
            return query_pb2.Expression(literal=_typed_literal(item))
        if kind == "FUNCTION":
            return self._function(item, clause, merged)
        if kind == "COMPARISON":
            return _call(_COMPARISONS.get(item["type"]) or _unsupported(item, clause),
                         [self._expression(item[side], clause, merged)
                          for side in ("left", "right")])
        if kind == "CONJUNCTION":
            function = F.FUNCTION_AND if item["type"] == "CONJUNCTION_AND" else F.FUNCTION_OR
            return _call(function, [self._expression(c, clause, merged)
                                    for c in item["children"]])
        if kind == "BETWEEN":
            return _call(F.FUNCTION_BETWEEN, [self._expression(item[part], clause, merged)
                                              for part in ("input", "lower", "upper")])
        if kind == "OPERATOR":
            return self._operator(item, clause, merged)
        return _unsupported(item, clause)

    def _output_named(self, item: dict[str, Any], clause: str) -> query_pb2.Expression | None:
        """The output column a name in HAVING or ORDER BY means, if it means one: in ORDER BY
        an output name comes first, in HAVING a column of the dataset does."""
        if len(item["column_names"]) != 1 or clause not in ("HAVING", "ORDER BY"):
            return None
        name = item["column_names"][0]
        position = _position_of(name, [output.name for output in self.outputs])
        if position is None or (clause == "HAVING" and self._table_column(name) is not None):
            return None
        return self.outputs[position].expression

    def _try_row_form(self, item: dict[str, Any]) -> query_pb2.Expression | None:
        try:
            return self._row_expression(item, "GROUP BY")
        except InvalidQuery:
            return None

    def _column(self, item, clause: str, merged: bool) -> query_pb2.Expression:
        parts = item["column_names"]
        tables = (self.dataset.name, getattr(self, "table_alias", self.dataset.name).lower())
        if len(parts) == 2 and parts[0].lower() in tables:
            parts = parts[1:]
        if len(parts) != 1:
            raise InvalidQuery(f"column {'.'.join(parts)!r} in {clause} is not a column of "
                               f"{self.dataset.name}")
        column = self._table_column(parts[0])
        if column is None:
            raise InvalidQuery(f"unknown column {parts[0][:64]!r} in {clause}; dataset "
                               f"{self.dataset.name} has: {', '.join(self.dataset.column_names)}")
        name = column.name
        if merged:
            raise InvalidQuery(f"column {name!r} in {clause} must appear in GROUP BY or be "
                               "used in an aggregate")
        return query_pb2.Expression(column=name)

    def _function(self, item, clause: str, merged: bool) -> query_pb2.Expression:
        name = item["function_name"].lower()
        if item.get("schema") or item.get("catalog"):
            raise InvalidQuery(f"function {name} must not name a schema or catalog")
        if item.get("distinct") or item.get("filter") or item.get("order_bys", {}).get("orders"):
            raise InvalidQuery(f"DISTINCT, FILTER and ORDER BY inside {name}() are not supported")
        arguments = [a["expression"] for a in item.get("arguments", [])]
        if any(a.get("name") for a in item.get("arguments", [])):
            raise InvalidQuery(f"named arguments to {name}() are not supported")
        if item.get("is_operator") and name == "-" and len(arguments) == 1:
            return _call(F.FUNCTION_NEGATE, [self._expression(arguments[0], clause, merged)])
        function = (_ARITHMETIC if item.get("is_operator") else _SCALAR_FUNCTIONS).get(name)
        if function is None and name in _INTERVAL_FUNCTIONS:
            raise InvalidQuery(INTERVAL_REFUSED)
        if function is None:
            if name in _AGGREGATES:
                raise InvalidQuery(f"aggregate {name}() is not allowed in {clause}")
            raise InvalidQuery(f"function {name}() is not supported; supported: "
                               f"{', '.join(sorted(set(_SCALAR_FUNCTIONS)))} and "
                               f"{', '.join(n for n in _AGGREGATES if n != 'count_star')}")
        return _call(function, [self._expression(a, clause, merged) for a in arguments])

    def _operator(self, item, clause: str, merged: bool) -> query_pb2.Expression:
        children = [self._expression(c, clause, merged) for c in item["children"]]
        kind = item["type"]
        if kind == "OPERATOR_NOT":
            inner = children[0]
            if inner.WhichOneof("kind") == "call":
                negated = {F.FUNCTION_IN: F.FUNCTION_NOT_IN,
                           F.FUNCTION_BETWEEN: F.FUNCTION_NOT_BETWEEN}.get(inner.call.function)
                inner_item = item["children"][0]
                if negated is not None and inner_item.get("class") in ("OPERATOR", "BETWEEN"):
                    return _call(negated, list(inner.call.arguments))
            return _call(F.FUNCTION_NOT, children)
        simple = {"OPERATOR_IS_NULL": F.FUNCTION_IS_NULL,
                  "OPERATOR_IS_NOT_NULL": F.FUNCTION_IS_NOT_NULL,
                  "COMPARE_IN": F.FUNCTION_IN,
                  "COMPARE_NOT_IN": F.FUNCTION_NOT_IN}
        if kind in simple:
            return _call(simple[kind], children)
        return _unsupported(item, clause)

    def _aggregate_reference(self, item, clause: str) -> query_pb2.Expression:
        name = item["function_name"].lower()
        if item.get("distinct"):
            raise InvalidQuery(f"{name}(DISTINCT …) cannot be merged exactly across cities and "
                               "is not supported")
        if item.get("filter") or item.get("order_bys", {}).get("orders"):
            raise InvalidQuery(f"FILTER and ORDER BY inside {name}() are not supported")
        arguments = [a["expression"] for a in item.get("arguments", [])]
        aggregate = query_pb2.Aggregate(function=_AGGREGATES[name])
        if name == "count_star":
            pass
        elif len(arguments) != 1:
            raise InvalidQuery(f"{name}() takes exactly one argument")
        else:
            argument = arguments[0]
            if argument.get("class") == "STAR":
                raise InvalidQuery(f"{name}(*) is not supported; use count(*)")
            aggregate.argument.CopyFrom(self._row_expression(argument, f"{name}()"))
        if aggregate not in self.aggregates:
            self.aggregates.append(aggregate)
        return query_pb2.Expression(aggregate=self.aggregates.index(aggregate))


def _position_of(name: str, names: list[str]) -> int | None:
    """Where `name` is among output names, whatever the case (the first, as DuckDB takes)."""
    lowered = name.lower()
    return next((i for i, n in enumerate(names) if n.lower() == lowered), None)


def _call(function: int, arguments: list[query_pb2.Expression]) -> query_pb2.Expression:
    return query_pb2.Expression(call=query_pb2.Call(function=function, arguments=arguments))


def _kind(item: dict[str, Any]) -> str:
    return str(item.get("type") or item.get("class") or "an unknown construct").replace("_", " ")


def _unsupported(item: dict[str, Any], clause: str):
    raise InvalidQuery(f"{_kind(item)} in {clause} is not supported")


def _integer_constant(item: dict[str, Any]) -> int | None:
    if item.get("class") == "CONSTANT" and item["literal"].get("kind") == "INTEGER":
        return int(item["literal"]["text"])
    return None


def _literal(literal: dict[str, Any]) -> query_pb2.Value:
    kind, text = literal.get("kind"), literal.get("text", "")
    if kind == "NULL_LITERAL":
        return query_pb2.Value()
    if kind == "INTEGER":
        return to_value(int(text))
    if kind == "BOOLEAN":
        return to_value(text.lower() == "true")
    if kind == "STRING":
        return to_value(text)
    if kind == "NUMERIC":
        if "e" in text.lower():
            return to_value(float(text))
        try:
            return query_pb2.Value(decimal_value=format(Decimal(text), "f"))
        except InvalidOperation:
            raise InvalidQuery("a numeric literal is not a number") from None
    raise InvalidQuery(f"{str(kind).lower()} literals are not supported")


def _typed_literal(item: dict[str, Any]) -> query_pb2.Value:
    """DATE 'yyyy-mm-dd' and TIMESTAMP '…' literals; other casts are not supported."""
    type_name = item.get("type_expr", {}).get("type_name", "").upper()
    if type_name == "INTERVAL":
        raise InvalidQuery(INTERVAL_REFUSED)
    child = item.get("child", {})
    if (type_name not in _TYPED_LITERALS or item.get("try_cast")
            or child.get("class") != "CONSTANT" or child["literal"].get("kind") != "STRING"):
        raise InvalidQuery("CAST is not supported; write dates as DATE 'yyyy-mm-dd' and "
                           "timestamps as TIMESTAMP 'yyyy-mm-dd hh:mm:ss'")
    number = _temporal_number(type_name, child["literal"]["text"])
    if number is None:
        example = "'yyyy-mm-dd'" if type_name == "DATE" else "'yyyy-mm-dd hh:mm:ss'"
        raise InvalidQuery(f"a {type_name} literal is not a valid {type_name}: write "
                           f"{type_name} {example}")
    if type_name == "DATE":
        return query_pb2.Value(date_value=number)
    return query_pb2.Value(timestamp_value=number)


def _temporal_number(type_name: str, text: str) -> int | None:
    """DuckDB's reading of a DATE or TIMESTAMP literal, as its day or microsecond number since
    1970-01-01: the literal means what it means in DuckDB, in any year DuckDB holds."""
    sql = f"SELECT {as_number(type_name, 'v')} FROM (SELECT CAST(? AS {type_name}) AS v)"
    try:
        (number,) = _connection().execute(sql, [text]).fetchone()
    except duckdb.Error:  # its text would quote the literal
        return None
    return number
