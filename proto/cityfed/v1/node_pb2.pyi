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

class ListDatasetsRequest(_message.Message):
    __slots__ = ("purpose",)
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    purpose: str
    def __init__(self, purpose: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ...) -> None: ...

class ColumnSchema(_message.Message):
    __slots__ = ("name", "type", "description", "unit", "sensitivity", "nullable", "access")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    NULLABLE_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    description: str
    unit: str
    sensitivity: Sensitivity
    nullable: bool
    access: AccessLevel
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., unit: _Optional[str] = ..., sensitivity: _Optional[_Union[Sensitivity, str]] = ..., nullable: _Optional[bool] = ..., access: _Optional[_Union[AccessLevel, str]] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("name", "description", "columns", "row_count", "min_group_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    columns: _containers.RepeatedCompositeFieldContainer[ColumnSchema]
    row_count: int
    min_group_size: int
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[ColumnSchema, _Mapping]]] = ..., row_count: _Optional[int] = ..., min_group_size: _Optional[int] = ...) -> None: ...

class AggregateRequest(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: bytes
    def __init__(self, plan: _Optional[bytes] = ...) -> None: ...

class AggregateResponse(_message.Message):
    __slots__ = ("city", "groups", "suppressed_groups")
    CITY_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    city: str
    groups: _containers.RepeatedCompositeFieldContainer[_query_pb2.PartialGroup]
    suppressed_groups: int
    def __init__(self, city: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[_query_pb2.PartialGroup, _Mapping]]] = ..., suppressed_groups: _Optional[int] = ...) -> None: ...
