from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_MODE_UNSPECIFIED: _ClassVar[IngestMode]
    INGEST_MODE_REPLACE: _ClassVar[IngestMode]
    INGEST_MODE_APPEND: _ClassVar[IngestMode]
INGEST_MODE_UNSPECIFIED: IngestMode
INGEST_MODE_REPLACE: IngestMode
INGEST_MODE_APPEND: IngestMode

class IngestRequest(_message.Message):
    __slots__ = ("dataset", "path", "mode")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    path: str
    mode: IngestMode
    def __init__(self, dataset: _Optional[str] = ..., path: _Optional[str] = ..., mode: _Optional[_Union[IngestMode, str]] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("rows_loaded", "row_count")
    ROWS_LOADED_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    rows_loaded: int
    row_count: int
    def __init__(self, rows_loaded: _Optional[int] = ..., row_count: _Optional[int] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ("directory",)
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    directory: str
    def __init__(self, directory: _Optional[str] = ...) -> None: ...

class BackupResponse(_message.Message):
    __slots__ = ("audit_records", "audit_root", "row_counts", "files", "bytes")
    class RowCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    AUDIT_RECORDS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ROOT_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNTS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    audit_records: int
    audit_root: str
    row_counts: _containers.ScalarMap[str, int]
    files: int
    bytes: int
    def __init__(self, audit_records: _Optional[int] = ..., audit_root: _Optional[str] = ..., row_counts: _Optional[_Mapping[str, int]] = ..., files: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class ReloadManifestRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadManifestResponse(_message.Message):
    __slots__ = ("previous_version", "version", "expires_at")
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    previous_version: int
    version: int
    expires_at: str
    def __init__(self, previous_version: _Optional[int] = ..., version: _Optional[int] = ..., expires_at: _Optional[str] = ...) -> None: ...
