from cityfed.v1 import query_pb2 as _query_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LinkageMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINKAGE_MODE_UNSPECIFIED: _ClassVar[LinkageMode]
    LINKAGE_MODE_COUNT: _ClassVar[LinkageMode]
    LINKAGE_MODE_REVEAL_TO_OWNER: _ClassVar[LinkageMode]

class LinkageStep(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINKAGE_STEP_UNSPECIFIED: _ClassVar[LinkageStep]
    LINKAGE_STEP_BLINDED: _ClassVar[LinkageStep]
    LINKAGE_STEP_REBLINDED: _ClassVar[LinkageStep]
LINKAGE_MODE_UNSPECIFIED: LinkageMode
LINKAGE_MODE_COUNT: LinkageMode
LINKAGE_MODE_REVEAL_TO_OWNER: LinkageMode
LINKAGE_STEP_UNSPECIFIED: LinkageStep
LINKAGE_STEP_BLINDED: LinkageStep
LINKAGE_STEP_REBLINDED: LinkageStep

class LinkageSide(_message.Message):
    __slots__ = ("city", "dataset", "key_columns", "filter")
    CITY_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    city: str
    dataset: str
    key_columns: _containers.RepeatedScalarFieldContainer[str]
    filter: _query_pb2.Expression
    def __init__(self, city: _Optional[str] = ..., dataset: _Optional[str] = ..., key_columns: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[_query_pb2.Expression, _Mapping]] = ...) -> None: ...

class LinkagePlan(_message.Message):
    __slots__ = ("linkage_id", "mode", "owner", "partner", "check")
    LINKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PARTNER_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    linkage_id: bytes
    mode: LinkageMode
    owner: LinkageSide
    partner: LinkageSide
    check: str
    def __init__(self, linkage_id: _Optional[bytes] = ..., mode: _Optional[_Union[LinkageMode, str]] = ..., owner: _Optional[_Union[LinkageSide, _Mapping]] = ..., partner: _Optional[_Union[LinkageSide, _Mapping]] = ..., check: _Optional[str] = ...) -> None: ...

class LinkageChunk(_message.Message):
    __slots__ = ("linkage_id", "city", "step", "index", "points", "kid", "signature")
    LINKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    linkage_id: bytes
    city: str
    step: LinkageStep
    index: int
    points: bytes
    kid: str
    signature: bytes
    def __init__(self, linkage_id: _Optional[bytes] = ..., city: _Optional[str] = ..., step: _Optional[_Union[LinkageStep, str]] = ..., index: _Optional[int] = ..., points: _Optional[bytes] = ..., kid: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class LinkageSummary(_message.Message):
    __slots__ = ("linkage_id", "city", "step", "points", "chunks", "points_sha256", "padded", "count_epsilon", "kid", "signature")
    LINKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    POINTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    PADDED_FIELD_NUMBER: _ClassVar[int]
    COUNT_EPSILON_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    linkage_id: bytes
    city: str
    step: LinkageStep
    points: int
    chunks: int
    points_sha256: str
    padded: bool
    count_epsilon: float
    kid: str
    signature: bytes
    def __init__(self, linkage_id: _Optional[bytes] = ..., city: _Optional[str] = ..., step: _Optional[_Union[LinkageStep, str]] = ..., points: _Optional[int] = ..., chunks: _Optional[int] = ..., points_sha256: _Optional[str] = ..., padded: _Optional[bool] = ..., count_epsilon: _Optional[float] = ..., kid: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class LinkageMessage(_message.Message):
    __slots__ = ("chunk", "summary")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    chunk: LinkageChunk
    summary: LinkageSummary
    def __init__(self, chunk: _Optional[_Union[LinkageChunk, _Mapping]] = ..., summary: _Optional[_Union[LinkageSummary, _Mapping]] = ...) -> None: ...

class LinkageResult(_message.Message):
    __slots__ = ("linkage_id", "city", "mode", "count", "exact", "count_stddev", "count_half_width_95", "matched_keys", "owner_points", "owner_padded", "partner_points", "partner_padded")
    LINKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    COUNT_STDDEV_FIELD_NUMBER: _ClassVar[int]
    COUNT_HALF_WIDTH_95_FIELD_NUMBER: _ClassVar[int]
    MATCHED_KEYS_FIELD_NUMBER: _ClassVar[int]
    OWNER_POINTS_FIELD_NUMBER: _ClassVar[int]
    OWNER_PADDED_FIELD_NUMBER: _ClassVar[int]
    PARTNER_POINTS_FIELD_NUMBER: _ClassVar[int]
    PARTNER_PADDED_FIELD_NUMBER: _ClassVar[int]
    linkage_id: bytes
    city: str
    mode: LinkageMode
    count: int
    exact: bool
    count_stddev: float
    count_half_width_95: float
    matched_keys: _containers.RepeatedScalarFieldContainer[str]
    owner_points: int
    owner_padded: bool
    partner_points: int
    partner_padded: bool
    def __init__(self, linkage_id: _Optional[bytes] = ..., city: _Optional[str] = ..., mode: _Optional[_Union[LinkageMode, str]] = ..., count: _Optional[int] = ..., exact: _Optional[bool] = ..., count_stddev: _Optional[float] = ..., count_half_width_95: _Optional[float] = ..., matched_keys: _Optional[_Iterable[str]] = ..., owner_points: _Optional[int] = ..., owner_padded: _Optional[bool] = ..., partner_points: _Optional[int] = ..., partner_padded: _Optional[bool] = ...) -> None: ...
