from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Function(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUNCTION_UNSPECIFIED: _ClassVar[Function]
    FUNCTION_ADD: _ClassVar[Function]
    FUNCTION_SUBTRACT: _ClassVar[Function]
    FUNCTION_MULTIPLY: _ClassVar[Function]
    FUNCTION_DIVIDE: _ClassVar[Function]
    FUNCTION_INTEGER_DIVIDE: _ClassVar[Function]
    FUNCTION_MODULO: _ClassVar[Function]
    FUNCTION_NEGATE: _ClassVar[Function]
    FUNCTION_EQUAL: _ClassVar[Function]
    FUNCTION_NOT_EQUAL: _ClassVar[Function]
    FUNCTION_LESS: _ClassVar[Function]
    FUNCTION_LESS_OR_EQUAL: _ClassVar[Function]
    FUNCTION_GREATER: _ClassVar[Function]
    FUNCTION_GREATER_OR_EQUAL: _ClassVar[Function]
    FUNCTION_AND: _ClassVar[Function]
    FUNCTION_OR: _ClassVar[Function]
    FUNCTION_NOT: _ClassVar[Function]
    FUNCTION_IS_NULL: _ClassVar[Function]
    FUNCTION_IS_NOT_NULL: _ClassVar[Function]
    FUNCTION_IN: _ClassVar[Function]
    FUNCTION_NOT_IN: _ClassVar[Function]
    FUNCTION_BETWEEN: _ClassVar[Function]
    FUNCTION_NOT_BETWEEN: _ClassVar[Function]
    FUNCTION_YEAR: _ClassVar[Function]
    FUNCTION_MONTH: _ClassVar[Function]
    FUNCTION_DAY: _ClassVar[Function]
    FUNCTION_HOUR: _ClassVar[Function]
    FUNCTION_DATE_TRUNC: _ClassVar[Function]
    FUNCTION_DATE_DIFF: _ClassVar[Function]

class AggregateFunction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATE_FUNCTION_UNSPECIFIED: _ClassVar[AggregateFunction]
    AGGREGATE_FUNCTION_COUNT_STAR: _ClassVar[AggregateFunction]
    AGGREGATE_FUNCTION_COUNT: _ClassVar[AggregateFunction]
    AGGREGATE_FUNCTION_SUM: _ClassVar[AggregateFunction]
    AGGREGATE_FUNCTION_AVG: _ClassVar[AggregateFunction]
    AGGREGATE_FUNCTION_MIN: _ClassVar[AggregateFunction]
    AGGREGATE_FUNCTION_MAX: _ClassVar[AggregateFunction]
FUNCTION_UNSPECIFIED: Function
FUNCTION_ADD: Function
FUNCTION_SUBTRACT: Function
FUNCTION_MULTIPLY: Function
FUNCTION_DIVIDE: Function
FUNCTION_INTEGER_DIVIDE: Function
FUNCTION_MODULO: Function
FUNCTION_NEGATE: Function
FUNCTION_EQUAL: Function
FUNCTION_NOT_EQUAL: Function
FUNCTION_LESS: Function
FUNCTION_LESS_OR_EQUAL: Function
FUNCTION_GREATER: Function
FUNCTION_GREATER_OR_EQUAL: Function
FUNCTION_AND: Function
FUNCTION_OR: Function
FUNCTION_NOT: Function
FUNCTION_IS_NULL: Function
FUNCTION_IS_NOT_NULL: Function
FUNCTION_IN: Function
FUNCTION_NOT_IN: Function
FUNCTION_BETWEEN: Function
FUNCTION_NOT_BETWEEN: Function
FUNCTION_YEAR: Function
FUNCTION_MONTH: Function
FUNCTION_DAY: Function
FUNCTION_HOUR: Function
FUNCTION_DATE_TRUNC: Function
FUNCTION_DATE_DIFF: Function
AGGREGATE_FUNCTION_UNSPECIFIED: AggregateFunction
AGGREGATE_FUNCTION_COUNT_STAR: AggregateFunction
AGGREGATE_FUNCTION_COUNT: AggregateFunction
AGGREGATE_FUNCTION_SUM: AggregateFunction
AGGREGATE_FUNCTION_AVG: AggregateFunction
AGGREGATE_FUNCTION_MIN: AggregateFunction
AGGREGATE_FUNCTION_MAX: AggregateFunction

class Value(_message.Message):
    __slots__ = ("bool_value", "int_value", "big_int_value", "double_value", "decimal_value", "string_value", "date_value", "timestamp_value")
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BIG_INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    DECIMAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATE_VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_VALUE_FIELD_NUMBER: _ClassVar[int]
    bool_value: bool
    int_value: int
    big_int_value: str
    double_value: float
    decimal_value: str
    string_value: str
    date_value: int
    timestamp_value: int
    def __init__(self, bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., big_int_value: _Optional[str] = ..., double_value: _Optional[float] = ..., decimal_value: _Optional[str] = ..., string_value: _Optional[str] = ..., date_value: _Optional[int] = ..., timestamp_value: _Optional[int] = ...) -> None: ...

class Call(_message.Message):
    __slots__ = ("function", "arguments")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    function: Function
    arguments: _containers.RepeatedCompositeFieldContainer[Expression]
    def __init__(self, function: _Optional[_Union[Function, str]] = ..., arguments: _Optional[_Iterable[_Union[Expression, _Mapping]]] = ...) -> None: ...

class Expression(_message.Message):
    __slots__ = ("column", "literal", "call", "group_key", "aggregate")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    LITERAL_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    GROUP_KEY_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    column: str
    literal: Value
    call: Call
    group_key: int
    aggregate: int
    def __init__(self, column: _Optional[str] = ..., literal: _Optional[_Union[Value, _Mapping]] = ..., call: _Optional[_Union[Call, _Mapping]] = ..., group_key: _Optional[int] = ..., aggregate: _Optional[int] = ...) -> None: ...

class Aggregate(_message.Message):
    __slots__ = ("function", "argument")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENT_FIELD_NUMBER: _ClassVar[int]
    function: AggregateFunction
    argument: Expression
    def __init__(self, function: _Optional[_Union[AggregateFunction, str]] = ..., argument: _Optional[_Union[Expression, _Mapping]] = ...) -> None: ...

class AggregatePlan(_message.Message):
    __slots__ = ("dataset", "filter", "group_by", "aggregates")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    AGGREGATES_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    filter: Expression
    group_by: _containers.RepeatedCompositeFieldContainer[Expression]
    aggregates: _containers.RepeatedCompositeFieldContainer[Aggregate]
    def __init__(self, dataset: _Optional[str] = ..., filter: _Optional[_Union[Expression, _Mapping]] = ..., group_by: _Optional[_Iterable[_Union[Expression, _Mapping]]] = ..., aggregates: _Optional[_Iterable[_Union[Aggregate, _Mapping]]] = ...) -> None: ...

class PartialAggregate(_message.Message):
    __slots__ = ("count", "sum", "min", "max")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    count: int
    sum: Value
    min: Value
    max: Value
    def __init__(self, count: _Optional[int] = ..., sum: _Optional[_Union[Value, _Mapping]] = ..., min: _Optional[_Union[Value, _Mapping]] = ..., max: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class PartialGroup(_message.Message):
    __slots__ = ("keys", "aggregates")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATES_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[Value]
    aggregates: _containers.RepeatedCompositeFieldContainer[PartialAggregate]
    def __init__(self, keys: _Optional[_Iterable[_Union[Value, _Mapping]]] = ..., aggregates: _Optional[_Iterable[_Union[PartialAggregate, _Mapping]]] = ...) -> None: ...

class OrderKey(_message.Message):
    __slots__ = ("expression", "descending", "nulls_first")
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    DESCENDING_FIELD_NUMBER: _ClassVar[int]
    NULLS_FIRST_FIELD_NUMBER: _ClassVar[int]
    expression: Expression
    descending: bool
    nulls_first: bool
    def __init__(self, expression: _Optional[_Union[Expression, _Mapping]] = ..., descending: _Optional[bool] = ..., nulls_first: _Optional[bool] = ...) -> None: ...

class OutputColumn(_message.Message):
    __slots__ = ("name", "expression")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    expression: Expression
    def __init__(self, name: _Optional[str] = ..., expression: _Optional[_Union[Expression, _Mapping]] = ...) -> None: ...

class FederatedQuery(_message.Message):
    __slots__ = ("plan", "columns", "having", "order_by", "limit", "offset")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    HAVING_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    plan: AggregatePlan
    columns: _containers.RepeatedCompositeFieldContainer[OutputColumn]
    having: Expression
    order_by: _containers.RepeatedCompositeFieldContainer[OrderKey]
    limit: int
    offset: int
    def __init__(self, plan: _Optional[_Union[AggregatePlan, _Mapping]] = ..., columns: _Optional[_Iterable[_Union[OutputColumn, _Mapping]]] = ..., having: _Optional[_Union[Expression, _Mapping]] = ..., order_by: _Optional[_Iterable[_Union[OrderKey, _Mapping]]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...
