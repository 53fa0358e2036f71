from cityfed.v1 import linkage_pb2 as _linkage_pb2
from cityfed.v1 import query_pb2 as _query_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CityStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CITY_STATUS_UNSPECIFIED: _ClassVar[CityStatus]
    CITY_STATUS_ANSWERED: _ClassVar[CityStatus]
    CITY_STATUS_REFUSED: _ClassVar[CityStatus]
    CITY_STATUS_TIMED_OUT: _ClassVar[CityStatus]
    CITY_STATUS_UNREACHABLE: _ClassVar[CityStatus]
    CITY_STATUS_FAILED: _ClassVar[CityStatus]
CITY_STATUS_UNSPECIFIED: CityStatus
CITY_STATUS_ANSWERED: CityStatus
CITY_STATUS_REFUSED: CityStatus
CITY_STATUS_TIMED_OUT: CityStatus
CITY_STATUS_UNREACHABLE: CityStatus
CITY_STATUS_FAILED: CityStatus

class FederatedAggregateRequest(_message.Message):
    __slots__ = ("sql", "query", "cities", "require_all", "city_timeout_ms", "purpose")
    SQL_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CITIES_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_ALL_FIELD_NUMBER: _ClassVar[int]
    CITY_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    sql: str
    query: _query_pb2.FederatedQuery
    cities: _containers.RepeatedScalarFieldContainer[str]
    require_all: bool
    city_timeout_ms: int
    purpose: str
    def __init__(self, sql: _Optional[str] = ..., query: _Optional[_Union[_query_pb2.FederatedQuery, _Mapping]] = ..., cities: _Optional[_Iterable[str]] = ..., require_all: _Optional[bool] = ..., city_timeout_ms: _Optional[int] = ..., purpose: _Optional[str] = ...) -> None: ...

class CityOutcome(_message.Message):
    __slots__ = ("city", "status", "code", "detail", "groups", "elapsed_ms", "suppressed_groups", "receipt", "epsilon_charged", "epsilon_remaining", "private", "response")
    CITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    EPSILON_CHARGED_FIELD_NUMBER: _ClassVar[int]
    EPSILON_REMAINING_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    city: str
    status: CityStatus
    code: str
    detail: str
    groups: int
    elapsed_ms: float
    suppressed_groups: int
    receipt: str
    epsilon_charged: float
    epsilon_remaining: float
    private: bool
    response: bytes
    def __init__(self, city: _Optional[str] = ..., status: _Optional[_Union[CityStatus, str]] = ..., code: _Optional[str] = ..., detail: _Optional[str] = ..., groups: _Optional[int] = ..., elapsed_ms: _Optional[float] = ..., suppressed_groups: _Optional[int] = ..., receipt: _Optional[str] = ..., epsilon_charged: _Optional[float] = ..., epsilon_remaining: _Optional[float] = ..., private: _Optional[bool] = ..., response: _Optional[bytes] = ...) -> None: ...

class ColumnAccuracy(_message.Message):
    __slots__ = ("noisy", "noise_stddev", "half_widths_95")
    NOISY_FIELD_NUMBER: _ClassVar[int]
    NOISE_STDDEV_FIELD_NUMBER: _ClassVar[int]
    HALF_WIDTHS_95_FIELD_NUMBER: _ClassVar[int]
    noisy: bool
    noise_stddev: float
    half_widths_95: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, noisy: _Optional[bool] = ..., noise_stddev: _Optional[float] = ..., half_widths_95: _Optional[_Iterable[float]] = ...) -> None: ...

class FederatedAggregateResponse(_message.Message):
    __slots__ = ("column_names", "rows", "outcomes", "complete", "accuracy", "plan", "query", "column_types")
    COLUMN_NAMES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    COLUMN_TYPES_FIELD_NUMBER: _ClassVar[int]
    column_names: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[_query_pb2.Row]
    outcomes: _containers.RepeatedCompositeFieldContainer[CityOutcome]
    complete: bool
    accuracy: _containers.RepeatedCompositeFieldContainer[ColumnAccuracy]
    plan: bytes
    query: _query_pb2.FederatedQuery
    column_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, column_names: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[_query_pb2.Row, _Mapping]]] = ..., outcomes: _Optional[_Iterable[_Union[CityOutcome, _Mapping]]] = ..., complete: _Optional[bool] = ..., accuracy: _Optional[_Iterable[_Union[ColumnAccuracy, _Mapping]]] = ..., plan: _Optional[bytes] = ..., query: _Optional[_Union[_query_pb2.FederatedQuery, _Mapping]] = ..., column_types: _Optional[_Iterable[str]] = ...) -> None: ...

class FederatedMatchRequest(_message.Message):
    __slots__ = ("check", "plan", "owner", "partner", "mode", "purpose", "timeout_ms")
    CHECK_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PARTNER_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    check: str
    plan: _linkage_pb2.LinkagePlan
    owner: str
    partner: str
    mode: _linkage_pb2.LinkageMode
    purpose: str
    timeout_ms: int
    def __init__(self, check: _Optional[str] = ..., plan: _Optional[_Union[_linkage_pb2.LinkagePlan, _Mapping]] = ..., owner: _Optional[str] = ..., partner: _Optional[str] = ..., mode: _Optional[_Union[_linkage_pb2.LinkageMode, str]] = ..., purpose: _Optional[str] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class FederatedMatchResponse(_message.Message):
    __slots__ = ("result", "outcomes", "plan")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    result: _linkage_pb2.LinkageResult
    outcomes: _containers.RepeatedCompositeFieldContainer[CityOutcome]
    plan: _linkage_pb2.LinkagePlan
    def __init__(self, result: _Optional[_Union[_linkage_pb2.LinkageResult, _Mapping]] = ..., outcomes: _Optional[_Iterable[_Union[CityOutcome, _Mapping]]] = ..., plan: _Optional[_Union[_linkage_pb2.LinkagePlan, _Mapping]] = ...) -> None: ...
