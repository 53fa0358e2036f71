"""Economic and behavioural parameters of the member cities, and the flows between them.

Figures are rounded approximations of 2024-2026 public statistics; they shape the data, they
are not meant as statistics themselves.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CityProfile:
    own_hukou: float  # share of residents with a local household registration
    avg_wage: float  # average monthly wage, the social-insurance contribution base, CNY
    employment: float  # share of working-age residents in insured employment
    employee_pension: float  # average monthly enterprise-employee pension, CNY
    resident_pension: float  # average monthly urban-rural resident pension, CNY
    employee_share: float  # share of pensioners drawing an employee pension
    payday: int  # day of the month pensions and contributions are settled
    care_prices: float  # price level of medical care relative to Hebei
    free_bus_age: int  # age from which residents ride buses free
    anonymous_taps: float  # share of transit taps by anonymous cards


PROFILES: dict[str, CityProfile] = {
    "beijing": CityProfile(0.66, 12_500, 0.72, 4_900, 1_050, 0.88, 15, 1.35, 65, 0.05),
    "tianjin": CityProfile(0.78, 8_700, 0.66, 3_950, 330, 0.80, 10, 1.10, 65, 0.07),
    "shijiazhuang": CityProfile(0.88, 7_000, 0.62, 3_500, 210, 0.58, 20, 0.95, 70, 0.08),
    "baoding": CityProfile(0.92, 6_300, 0.58, 3_300, 190, 0.45, 18, 0.85, 70, 0.10),
    "langfang": CityProfile(0.80, 6_800, 0.62, 3_400, 200, 0.50, 16, 0.90, 70, 0.09),
}

# Residents of a city (outer key) whose household registration is in another member city,
# as a share of all residents; the rest of the non-local residents come from ELSEWHERE.
HUKOU_FROM: dict[str, dict[str, float]] = {
    "beijing": {"tianjin": 0.010, "shijiazhuang": 0.015, "baoding": 0.030, "langfang": 0.015},
    "tianjin": {"beijing": 0.010, "shijiazhuang": 0.010, "baoding": 0.015, "langfang": 0.010},
    "shijiazhuang": {"beijing": 0.003, "tianjin": 0.002, "baoding": 0.020, "langfang": 0.003},
    "baoding": {"beijing": 0.010, "tianjin": 0.003, "shijiazhuang": 0.010, "langfang": 0.005},
    "langfang": {"beijing": 0.030, "tianjin": 0.015, "shijiazhuang": 0.005, "baoding": 0.020},
}

# Share of a city's transit taps (outer key) made with cards issued by another member city,
# mostly by people who live there and commute in: Langfang (Yanjiao, Gu'an) and Tianjin
# into Beijing, Beijing into Tianjin and Langfang.
COMMUTER_TAPS: dict[str, dict[str, float]] = {
    "beijing": {"tianjin": 0.008, "shijiazhuang": 0.003, "baoding": 0.010, "langfang": 0.025},
    "tianjin": {"beijing": 0.012, "shijiazhuang": 0.002, "baoding": 0.003, "langfang": 0.006},
    "shijiazhuang": {"beijing": 0.008, "tianjin": 0.002, "baoding": 0.012, "langfang": 0.001},
    "baoding": {"beijing": 0.025, "tianjin": 0.003, "shijiazhuang": 0.012, "langfang": 0.003},
    "langfang": {"beijing": 0.060, "tianjin": 0.012, "shijiazhuang": 0.002, "baoding": 0.006},
}

# Share of a city's hospital visits (outer key) settled by another member city's medical
# insurance: Hebei patients treated in Beijing, Beijing retirees treated in Yanjiao.
OUT_OF_CITY_VISITS: dict[str, dict[str, float]] = {
    "beijing": {"tianjin": 0.008, "shijiazhuang": 0.012, "baoding": 0.025, "langfang": 0.020},
    "tianjin": {"beijing": 0.006, "shijiazhuang": 0.002, "baoding": 0.004, "langfang": 0.008},
    "shijiazhuang": {"beijing": 0.004, "tianjin": 0.001, "baoding": 0.015, "langfang": 0.001},
    "baoding": {"beijing": 0.010, "tianjin": 0.002, "shijiazhuang": 0.006, "langfang": 0.002},
    "langfang": {"beijing": 0.030, "tianjin": 0.006, "shijiazhuang": 0.001, "baoding": 0.004},
}

# Pensioners living in a city (outer key) whose pension is paid by another member city,
# as a share of the city's pensioners: people who retired from a job there and moved home.
PENSION_FROM: dict[str, dict[str, float]] = {
    "beijing": {"tianjin": 0.002, "shijiazhuang": 0.001, "baoding": 0.001, "langfang": 0.001},
    "tianjin": {"beijing": 0.004, "shijiazhuang": 0.001, "baoding": 0.001, "langfang": 0.001},
    "shijiazhuang": {"beijing": 0.004, "tianjin": 0.002, "baoding": 0.002, "langfang": 0.001},
    "baoding": {"beijing": 0.012, "tianjin": 0.003, "shijiazhuang": 0.003, "langfang": 0.001},
    "langfang": {"beijing": 0.020, "tianjin": 0.004, "shijiazhuang": 0.001, "baoding": 0.002},
}

# Share of residents on each side of China's population pyramid in 2026, by five-year band
# (0-4, 5-9, ..., 100-104): natives, and migrants who move for work.
NATIVE_AGES: tuple[float, ...] = (
    3.6, 5.2, 6.1, 6.2, 5.7, 5.1, 5.9, 7.6, 6.9, 6.3, 7.6, 8.1, 6.9, 5.0, 4.6, 3.0, 1.8, 0.9,
    0.35, 0.1, 0.02,
)
MIGRANT_AGES: tuple[float, ...] = (
    2.5, 3.0, 3.0, 3.0, 8.0, 13.0, 15.0, 14.0, 11.0, 9.0, 7.0, 5.0, 3.0, 2.0, 1.0, 0.6, 0.3,
    0.1, 0.03, 0.01, 0.0,
)

SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 9.0), ("李", 8.5), ("张", 8.8), ("刘", 6.5), ("杨", 3.2), ("赵", 3.0), ("陈", 2.5),
    ("孙", 2.0), ("高", 1.8), ("马", 1.7), ("郭", 1.6), ("周", 1.4), ("吴", 1.2), ("徐", 1.2),
    ("朱", 1.0), ("胡", 1.0), ("田", 1.0), ("韩", 1.0), ("于", 1.0), ("冯", 0.9), ("董", 0.9),
    ("宋", 0.9), ("曹", 0.8), ("许", 0.8), ("崔", 0.8), ("贾", 0.8), ("郑", 0.8), ("梁", 0.8),
    ("吕", 0.7), ("魏", 0.7), ("何", 0.6), ("袁", 0.6), ("范", 0.6), ("杜", 0.6), ("石", 0.6),
    ("闫", 0.6), ("任", 0.6), ("邓", 0.5), ("齐", 0.5), ("侯", 0.5), ("白", 0.5), ("苏", 0.5),
    ("薛", 0.4), ("常", 0.4), ("史", 0.4), ("霍", 0.3), ("欧阳", 0.05),
)

# Characters for given names by (sex, born before 1980).
GIVEN_NAME_CHARS: dict[tuple[str, bool], str] = {
    ("M", True): "建国军明华伟强志永平海东立春福德文兵刚林勇庆金成宝亮生新忠利",
    ("M", False): "浩宇轩博涛鹏磊晨俊杰辰睿泽一航铭昊然凯嘉思天阳毅豪瑞鑫宁",
    ("F", True): "淑秀桂兰英玉凤芳华珍霞梅丽红敏静艳云萍琴娟荣翠金春燕丹玲",
    ("F", False): "欣怡涵雨梓萱思佳琪婷雪悦诗晴若可馨妍瑶宁彤菲璐一心语童",
}
