from cityfed.v1 import linkage_pb2 as _linkage_pb2
from cityfed.v1 import query_pb2 as _query_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Sensitivity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENSITIVITY_UNSPECIFIED: _ClassVar[Sensitivity]
    SENSITIVITY_PUBLIC: _ClassVar[Sensitivity]
    SENSITIVITY_QUASI_IDENTIFIER: _ClassVar[Sensitivity]
    SENSITIVITY_IDENTIFIER: _ClassVar[Sensitivity]
    SENSITIVITY_SENSITIVE: _ClassVar[Sensitivity]

class AccessLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_LEVEL_UNSPECIFIED: _ClassVar[AccessLevel]
    ACCESS_LEVEL_DENY: _ClassVar[AccessLevel]
    ACCESS_LEVEL_MATCH: _ClassVar[AccessLevel]
    ACCESS_LEVEL_AGGREGATE: _ClassVar[AccessLevel]
    ACCESS_LEVEL_ROW: _ClassVar[AccessLevel]
SENSITIVITY_UNSPECIFIED: Sensitivity
SENSITIVITY_PUBLIC: Sensitivity
SENSITIVITY_QUASI_IDENTIFIER: Sensitivity
SENSITIVITY_IDENTIFIER: Sensitivity
SENSITIVITY_SENSITIVE: Sensitivity
ACCESS_LEVEL_UNSPECIFIED: AccessLevel
ACCESS_LEVEL_DENY: AccessLevel
ACCESS_LEVEL_MATCH: AccessLevel
ACCESS_LEVEL_AGGREGATE: AccessLevel
ACCESS_LEVEL_ROW: AccessLevel

class GetNodeInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetNodeInfoResponse(_message.Message):
    __slots__ = ("city", "display_name", "software_version")
    CITY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    city: str
    display_name: str
    software_version: str
    def __init__(self, city: _Optional[str] = ..., display_name: _Optional[str] = ..., software_version: _Optional[str] = ...) -> None: ...

class GetAuditCheckpointRequest(_message.Message):
    __slots__ = ("known_size",)
    KNOWN_SIZE_FIELD_NUMBER: _ClassVar[int]
    known_size: int
    def __init__(self, known_size: _Optional[int] = ...) -> None: ...

class GetAuditCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint", "consistency_proof")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_PROOF_FIELD_NUMBER: _ClassVar[int]
    checkpoint: str
    consistency_proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, checkpoint: _Optional[str] = ..., consistency_proof: _Optional[_Iterable[str]] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("purpose",)
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    purpose: str
    def __init__(self, purpose: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "budget")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    budget: PrivacyBudget
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., budget: _Optional[_Union[PrivacyBudget, _Mapping]] = ...) -> None: ...

class PrivacyBudget(_message.Message):
    __slots__ = ("purpose", "period", "resets_at", "epsilon_limit", "epsilon_spent", "delta_limit", "delta_spent", "epsilon_per_question", "delta_per_question")
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    RESETS_AT_FIELD_NUMBER: _ClassVar[int]
    EPSILON_LIMIT_FIELD_NUMBER: _ClassVar[int]
    EPSILON_SPENT_FIELD_NUMBER: _ClassVar[int]
    DELTA_LIMIT_FIELD_NUMBER: _ClassVar[int]
    DELTA_SPENT_FIELD_NUMBER: _ClassVar[int]
    EPSILON_PER_QUESTION_FIELD_NUMBER: _ClassVar[int]
    DELTA_PER_QUESTION_FIELD_NUMBER: _ClassVar[int]
    purpose: str
    period: str
    resets_at: str
    epsilon_limit: float
    epsilon_spent: float
    delta_limit: float
    delta_spent: float
    epsilon_per_question: float
    delta_per_question: float
    def __init__(self, purpose: _Optional[str] = ..., period: _Optional[str] = ..., resets_at: _Optional[str] = ..., epsilon_limit: _Optional[float] = ..., epsilon_spent: _Optional[float] = ..., delta_limit: _Optional[float] = ..., delta_spent: _Optional[float] = ..., epsilon_per_question: _Optional[float] = ..., delta_per_question: _Optional[float] = ...) -> None: ...

class ColumnSchema(_message.Message):
    __slots__ = ("name", "type", "description", "unit", "sensitivity", "nullable", "access", "lower_bound", "upper_bound")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    NULLABLE_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    UPPER_BOUND_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    description: str
    unit: str
    sensitivity: Sensitivity
    nullable: bool
    access: AccessLevel
    lower_bound: str
    upper_bound: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., unit: _Optional[str] = ..., sensitivity: _Optional[_Union[Sensitivity, str]] = ..., nullable: _Optional[bool] = ..., access: _Optional[_Union[AccessLevel, str]] = ..., lower_bound: _Optional[str] = ..., upper_bound: _Optional[str] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("name", "description", "columns", "row_count", "min_group_size", "max_rows_per_person")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_PER_PERSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    columns: _containers.RepeatedCompositeFieldContainer[ColumnSchema]
    row_count: int
    min_group_size: int
    max_rows_per_person: int
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[ColumnSchema, _Mapping]]] = ..., row_count: _Optional[int] = ..., min_group_size: _Optional[int] = ..., max_rows_per_person: _Optional[int] = ...) -> None: ...

class AggregateRequest(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: bytes
    def __init__(self, plan: _Optional[bytes] = ...) -> None: ...

class AggregateResponse(_message.Message):
    __slots__ = ("city", "groups", "suppressed_groups", "privacy")
    CITY_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_FIELD_NUMBER: _ClassVar[int]
    city: str
    groups: _containers.RepeatedCompositeFieldContainer[_query_pb2.PartialGroup]
    suppressed_groups: int
    privacy: PrivacyReport
    def __init__(self, city: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[_query_pb2.PartialGroup, _Mapping]]] = ..., suppressed_groups: _Optional[int] = ..., privacy: _Optional[_Union[PrivacyReport, _Mapping]] = ...) -> None: ...

class PrivacyReport(_message.Message):
    __slots__ = ("epsilon", "delta", "max_rows_per_person", "threshold", "aggregates", "budget")
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_PER_PERSON_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    AGGREGATES_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    epsilon: float
    delta: float
    max_rows_per_person: int
    threshold: int
    aggregates: _containers.RepeatedCompositeFieldContainer[AggregateNoise]
    budget: PrivacyBudget
    def __init__(self, epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., max_rows_per_person: _Optional[int] = ..., threshold: _Optional[int] = ..., aggregates: _Optional[_Iterable[_Union[AggregateNoise, _Mapping]]] = ..., budget: _Optional[_Union[PrivacyBudget, _Mapping]] = ...) -> None: ...

class AggregateNoise(_message.Message):
    __slots__ = ("count_scale", "sum_scale", "lower_bound", "upper_bound")
    COUNT_SCALE_FIELD_NUMBER: _ClassVar[int]
    SUM_SCALE_FIELD_NUMBER: _ClassVar[int]
    LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    UPPER_BOUND_FIELD_NUMBER: _ClassVar[int]
    count_scale: float
    sum_scale: float
    lower_bound: str
    upper_bound: str
    def __init__(self, count_scale: _Optional[float] = ..., sum_scale: _Optional[float] = ..., lower_bound: _Optional[str] = ..., upper_bound: _Optional[str] = ...) -> None: ...

class OpenLinkageRequest(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: bytes
    def __init__(self, plan: _Optional[bytes] = ...) -> None: ...

class OpenLinkageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: _linkage_pb2.LinkageMessage
    def __init__(self, message: _Optional[_Union[_linkage_pb2.LinkageMessage, _Mapping]] = ...) -> None: ...

class ReblindLinkageRequest(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: _linkage_pb2.LinkageMessage
    def __init__(self, message: _Optional[_Union[_linkage_pb2.LinkageMessage, _Mapping]] = ...) -> None: ...

class ReblindLinkageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: _linkage_pb2.LinkageMessage
    def __init__(self, message: _Optional[_Union[_linkage_pb2.LinkageMessage, _Mapping]] = ...) -> None: ...

class FinishLinkageRequest(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: _linkage_pb2.LinkageMessage
    def __init__(self, message: _Optional[_Union[_linkage_pb2.LinkageMessage, _Mapping]] = ...) -> None: ...

class FinishLinkageResponse(_message.Message):
    __slots__ = ("result", "budget")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    result: _linkage_pb2.LinkageResult
    budget: PrivacyBudget
    def __init__(self, result: _Optional[_Union[_linkage_pb2.LinkageResult, _Mapping]] = ..., budget: _Optional[_Union[PrivacyBudget, _Mapping]] = ...) -> None: ...
