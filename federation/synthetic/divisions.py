"""GB/T 2260 administrative divisions of the five member cities and of migrants' home cities.

Population weights are resident counts from the 2020 census in ten thousands, rounded; they
only need to be right in proportion. A district's `former` codes are the codes its residents
were registered under before a merger or a county-to-district conversion, so that resident
ids of older people carry them, as real ones do.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FormerCode:
    code: str
    name: str
    until: int  # the last year births were registered under this code


@dataclass(frozen=True)
class District:
    code: str
    name: str
    weight: float
    former: tuple[FormerCode, ...] = ()


@dataclass(frozen=True)
class City:
    id: str
    name: str
    code: str
    weight: float
    districts: tuple[District, ...]

    def district(self, code: str) -> District | None:
        return next((d for d in self.districts if d.code == code), None)


def _district(code: str, name: str, weight: float, former: tuple = ()) -> District:
    return District(code, name, weight, tuple(FormerCode(*f) for f in former))


def _districts(*rows: tuple) -> tuple[District, ...]:
    return tuple(_district(*row) for row in rows)


BEIJING = City("beijing", "北京", "110000", 2189.3, _districts(
    ("110101", "东城区", 70.9, (("110103", "崇文区", 2010),)),
    ("110102", "西城区", 110.6, (("110104", "宣武区", 2010),)),
    ("110105", "朝阳区", 345.2),
    ("110106", "丰台区", 201.9),
    ("110107", "石景山区", 56.8),
    ("110108", "海淀区", 313.3),
    ("110109", "门头沟区", 39.3),
    ("110111", "房山区", 131.3),
    ("110112", "通州区", 184.0, (("110223", "通县", 1997),)),
    ("110113", "顺义区", 132.4, (("110222", "顺义县", 1998),)),
    ("110114", "昌平区", 226.9, (("110221", "昌平县", 1999),)),
    ("110115", "大兴区", 199.4, (("110224", "大兴县", 2001),)),
    ("110116", "怀柔区", 44.1, (("110227", "怀柔县", 2001),)),
    ("110117", "平谷区", 45.7, (("110226", "平谷县", 2001),)),
    ("110118", "密云区", 52.8, (("110228", "密云县", 2015),)),
    ("110119", "延庆区", 34.6, (("110229", "延庆县", 2015),)),
))

TIANJIN = City("tianjin", "天津", "120000", 1386.6, _districts(
    ("120101", "和平区", 35.5),
    ("120102", "河东区", 85.9),
    ("120103", "河西区", 82.2),
    ("120104", "南开区", 89.0),
    ("120105", "河北区", 64.8),
    ("120106", "红桥区", 48.3),
    ("120110", "东丽区", 85.7),
    ("120111", "西青区", 119.5),
    ("120112", "津南区", 92.9),
    ("120113", "北辰区", 90.9),
    ("120114", "武清区", 115.1, (("120222", "武清县", 2000),)),
    ("120115", "宝坻区", 72.3, (("120224", "宝坻县", 2001),)),
    ("120116", "滨海新区", 206.7, (
        ("120107", "塘沽区", 2009), ("120108", "汉沽区", 2009), ("120109", "大港区", 2009),
    )),
    ("120117", "宁河区", 39.5, (("120221", "宁河县", 2015),)),
    ("120118", "静海区", 78.7, (("120223", "静海县", 2015),)),
    ("120119", "蓟州区", 79.5, (("120225", "蓟县", 2016),)),
))

SHIJIAZHUANG = City("shijiazhuang", "石家庄", "130100", 1123.5, _districts(
    ("130102", "长安区", 97.0, (("130103", "桥东区", 2014),)),
    ("130104", "桥西区", 119.0),
    ("130105", "新华区", 77.0),
    ("130107", "井陉矿区", 9.0),
    ("130108", "裕华区", 106.0),
    ("130109", "藁城区", 78.0, (("130182", "藁城市", 2014),)),
    ("130110", "鹿泉区", 47.0, (("130185", "鹿泉市", 2014),)),
    ("130111", "栾城区", 35.0, (("130124", "栾城县", 2014),)),
    ("130121", "井陉县", 28.0),
    ("130123", "正定县", 66.0),
    ("130125", "行唐县", 42.0),
    ("130126", "灵寿县", 30.0),
    ("130127", "高邑县", 17.0),
    ("130128", "深泽县", 24.0),
    ("130129", "赞皇县", 25.0),
    ("130130", "无极县", 47.0),
    ("130131", "平山县", 43.0),
    ("130132", "元氏县", 42.0),
    ("130133", "赵县", 57.0),
    ("130181", "辛集市", 60.0),
    ("130183", "晋州市", 53.0),
    ("130184", "新乐市", 49.0),
))

BAODING = City("baoding", "保定", "130600", 1154.4, _districts(
    ("130602", "竞秀区", 72.0),
    ("130606", "莲池区", 100.0, (("130603", "北市区", 2015), ("130604", "南市区", 2015))),
    ("130607", "满城区", 40.0, (("130621", "满城县", 2015),)),
    ("130608", "清苑区", 60.0, (("130622", "清苑县", 2015),)),
    ("130609", "徐水区", 60.0, (("130625", "徐水县", 2015),)),
    ("130623", "涞水县", 32.0),
    ("130624", "阜平县", 20.0),
    ("130626", "定兴县", 57.0),
    ("130627", "唐县", 57.0),
    ("130628", "高阳县", 35.0),
    ("130629", "容城县", 27.0),
    ("130630", "涞源县", 27.0),
    ("130631", "望都县", 26.0),
    ("130632", "安新县", 46.0),
    ("130633", "易县", 52.0),
    ("130634", "曲阳县", 59.0),
    ("130635", "蠡县", 51.0),
    ("130636", "顺平县", 31.0),
    ("130637", "博野县", 26.0),
    ("130638", "雄县", 39.0),
    ("130681", "涿州市", 66.0),
    ("130682", "定州市", 110.0),
    ("130683", "安国市", 37.0),
    ("130684", "高碑店市", 57.0),
))

LANGFANG = City("langfang", "廊坊", "131000", 546.4, _districts(
    ("131002", "安次区", 42.0),
    ("131003", "广阳区", 58.0),
    ("131022", "固安县", 60.0),
    ("131023", "永清县", 40.0),
    ("131024", "香河县", 45.0),
    ("131025", "大城县", 45.0),
    ("131026", "文安县", 50.0),
    ("131028", "大厂回族自治县", 17.0),
    ("131081", "霸州市", 70.0),
    ("131082", "三河市", 80.0),
))

MEMBER_CITIES: tuple[City, ...] = (BEIJING, TIANJIN, SHIJIAZHUANG, BAODING, LANGFANG)

# Home cities of migrants from outside the region; weights are relative shares of migrants.
ELSEWHERE: tuple[City, ...] = (
    City("tangshan", "唐山", "130200", 6.0, _districts(
        ("130202", "路南区", 1.0), ("130203", "路北区", 1.0))),
    City("handan", "邯郸", "130400", 7.0, _districts(
        ("130402", "邯山区", 1.0), ("130403", "丛台区", 1.0))),
    City("xingtai", "邢台", "130500", 5.0, _districts(
        ("130502", "襄都区", 1.0), ("130503", "信都区", 1.0))),
    City("zhangjiakou", "张家口", "130700", 4.0, _districts(
        ("130702", "桥东区", 1.0), ("130703", "桥西区", 1.0))),
    City("chengde", "承德", "130800", 3.0, _districts(("130802", "双桥区", 1.0),)),
    City("cangzhou", "沧州", "130900", 6.0, _districts(
        ("130902", "新华区", 1.0), ("130903", "运河区", 1.0))),
    City("hengshui", "衡水", "131100", 4.0, _districts(("131102", "桃城区", 1.0),)),
    City("zhengzhou", "郑州", "410100", 5.0, _districts(
        ("410102", "中原区", 1.0), ("410105", "金水区", 1.0))),
    City("jinan", "济南", "370100", 4.0, _districts(
        ("370102", "历下区", 1.0), ("370103", "市中区", 1.0))),
    City("taiyuan", "太原", "140100", 3.0, _districts(
        ("140105", "小店区", 1.0), ("140106", "迎泽区", 1.0))),
    City("hohhot", "呼和浩特", "150100", 2.0, _districts(("150102", "新城区", 1.0),)),
    City("shenyang", "沈阳", "210100", 2.0, _districts(("210102", "和平区", 1.0),)),
    City("harbin", "哈尔滨", "230100", 3.0, _districts(("230102", "道里区", 1.0),)),
    City("hefei", "合肥", "340100", 2.0, _districts(("340104", "蜀山区", 1.0),)),
    City("chengdu", "成都", "510100", 2.0, _districts(("510104", "锦江区", 1.0),)),
)

CITIES: tuple[str, ...] = tuple(c.id for c in MEMBER_CITIES)


def member(city_id: str) -> City:
    for city in MEMBER_CITIES:
        if city.id == city_id:
            return city
    raise KeyError(city_id)


def known_division_codes() -> frozenset[str]:
    """Every district code, current or former, a generated resident id may start with."""
    return frozenset(
        code
        for city in (*MEMBER_CITIES, *ELSEWHERE)
        for district in city.districts
        for code in (district.code, *(f.code for f in district.former))
    )
