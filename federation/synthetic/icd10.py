"""A few dozen real ICD-10 (WHO) diagnoses with the department that sees them.

Weights are relative visit frequencies per age group (child under 14, adult 14-59, elder 60
and over); `sex` restricts a diagnosis to one sex. Costs are the range of the total cost of a
visit in CNY at Hebei price levels, from a plain outpatient visit to an inpatient stay.
`winter` multiplies the weight from January to March.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chapter:
    numeral: str
    first: str
    last: str
    title: str

    @property
    def range(self) -> str:
        return f"{self.first}-{self.last}"

    def contains(self, code: str) -> bool:
        return self.first <= code[:3] <= self.last


CHAPTERS: tuple[Chapter, ...] = (
    Chapter("I", "A00", "B99", "Certain infectious and parasitic diseases"),
    Chapter("II", "C00", "D48", "Neoplasms"),
    Chapter("III", "D50", "D89", "Diseases of the blood and blood-forming organs and certain "
            "disorders involving the immune mechanism"),
    Chapter("IV", "E00", "E90", "Endocrine, nutritional and metabolic diseases"),
    Chapter("V", "F00", "F99", "Mental and behavioural disorders"),
    Chapter("VI", "G00", "G99", "Diseases of the nervous system"),
    Chapter("VII", "H00", "H59", "Diseases of the eye and adnexa"),
    Chapter("VIII", "H60", "H95", "Diseases of the ear and mastoid process"),
    Chapter("IX", "I00", "I99", "Diseases of the circulatory system"),
    Chapter("X", "J00", "J99", "Diseases of the respiratory system"),
    Chapter("XI", "K00", "K93", "Diseases of the digestive system"),
    Chapter("XII", "L00", "L99", "Diseases of the skin and subcutaneous tissue"),
    Chapter("XIII", "M00", "M99", "Diseases of the musculoskeletal system and connective tissue"),
    Chapter("XIV", "N00", "N99", "Diseases of the genitourinary system"),
    Chapter("XV", "O00", "O99", "Pregnancy, childbirth and the puerperium"),
    Chapter("XVI", "P00", "P96", "Certain conditions originating in the perinatal period"),
    Chapter("XVII", "Q00", "Q99", "Congenital malformations, deformations and chromosomal "
            "abnormalities"),
    Chapter("XVIII", "R00", "R99", "Symptoms, signs and abnormal clinical and laboratory "
            "findings, not elsewhere classified"),
    Chapter("XIX", "S00", "T98", "Injury, poisoning and certain other consequences of external "
            "causes"),
    Chapter("XX", "V01", "Y98", "External causes of morbidity and mortality"),
    Chapter("XXI", "Z00", "Z99", "Factors influencing health status and contact with health "
            "services"),
    Chapter("XXII", "U00", "U85", "Codes for special purposes"),
)


def chapter_of(code: str) -> Chapter:
    for chapter in CHAPTERS:
        if chapter.contains(code):
            return chapter
    raise KeyError(code)


@dataclass(frozen=True)
class Diagnosis:
    code: str
    title: str
    department: str
    child: float
    adult: float
    elder: float
    cost_low: float
    cost_high: float
    sex: str = ""
    winter: float = 1.0

    @property
    def chapter(self) -> Chapter:
        return chapter_of(self.code)

    def weight(self, age_group: int) -> float:
        return (self.child, self.adult, self.elder)[age_group]


D = Diagnosis
DIAGNOSES: tuple[Diagnosis, ...] = (
    D("A09", "Other gastroenteritis and colitis of infectious and unspecified origin",
      "gastroenterology", 3.0, 1.5, 1.0, 80, 900),
    D("A15.0", "Tuberculosis of lung, confirmed by sputum microscopy",
      "infectious_diseases", 0.02, 0.15, 0.2, 500, 12000),
    D("B01.9", "Varicella without complication", "dermatology", 1.0, 0.1, 0.02, 100, 600,
      winter=1.3),
    D("B18.1", "Chronic viral hepatitis B without delta-agent", "infectious_diseases",
      0.02, 0.8, 0.6, 300, 4000),
    D("C16.9", "Malignant neoplasm of stomach, unspecified", "oncology",
      0.0, 0.15, 0.5, 3000, 60000),
    D("C34.9", "Malignant neoplasm of bronchus or lung, unspecified", "oncology",
      0.0, 0.3, 1.2, 3000, 80000),
    D("C50.9", "Malignant neoplasm of breast, unspecified", "oncology",
      0.0, 0.5, 0.4, 2000, 50000, sex="F"),
    D("D25.9", "Leiomyoma of uterus, unspecified", "gynecology",
      0.0, 0.8, 0.1, 300, 18000, sex="F"),
    D("D50.9", "Iron deficiency anaemia, unspecified", "hematology",
      0.3, 0.4, 0.3, 100, 900),
    D("E03.9", "Hypothyroidism, unspecified", "endocrinology", 0.05, 0.6, 0.5, 100, 600),
    D("E11.9", "Type 2 diabetes mellitus without complications", "endocrinology",
      0.01, 2.5, 6.0, 150, 1500),
    D("E78.5", "Hyperlipidaemia, unspecified", "cardiology", 0.0, 1.5, 3.0, 100, 700),
    D("F32.9", "Depressive episode, unspecified", "psychiatry", 0.1, 0.8, 0.4, 200, 1800),
    D("F41.1", "Generalized anxiety disorder", "psychiatry", 0.05, 0.6, 0.3, 200, 1500),
    D("G43.9", "Migraine, unspecified", "neurology", 0.1, 0.5, 0.2, 100, 700),
    D("G47.0", "Disorders of initiating and maintaining sleep", "neurology",
      0.05, 0.6, 1.0, 100, 700),
    D("H25.9", "Senile cataract, unspecified", "ophthalmology", 0.0, 0.05, 1.2, 300, 9000),
    D("H52.1", "Myopia", "ophthalmology", 2.5, 0.8, 0.1, 50, 600),
    D("H66.9", "Otitis media, unspecified", "otolaryngology", 1.0, 0.3, 0.2, 80, 600,
      winter=1.3),
    D("I10", "Essential (primary) hypertension", "cardiology", 0.0, 3.0, 9.0, 100, 900),
    D("I25.1", "Atherosclerotic heart disease", "cardiology", 0.0, 0.6, 3.0, 300, 40000),
    D("I48", "Atrial fibrillation and flutter", "cardiology", 0.0, 0.1, 0.8, 300, 25000),
    D("I50.9", "Heart failure, unspecified", "cardiology", 0.0, 0.1, 1.0, 800, 30000,
      winter=1.3),
    D("I63.9", "Cerebral infarction, unspecified", "neurology", 0.0, 0.3, 2.0, 1000, 45000,
      winter=1.3),
    D("J06.9", "Acute upper respiratory infection, unspecified", "respiratory",
      10.0, 6.0, 4.0, 60, 450, winter=2.0),
    D("J18.9", "Pneumonia, unspecified", "respiratory", 1.5, 0.6, 2.0, 500, 20000, winter=2.0),
    D("J20.9", "Acute bronchitis, unspecified", "respiratory", 3.0, 2.0, 2.0, 100, 700,
      winter=2.0),
    D("J30.4", "Allergic rhinitis, unspecified", "otolaryngology", 1.5, 1.5, 0.4, 80, 600),
    D("J44.9", "Chronic obstructive pulmonary disease, unspecified", "respiratory",
      0.0, 0.3, 2.5, 300, 15000, winter=1.6),
    D("J45.9", "Asthma, unspecified", "respiratory", 1.0, 0.6, 0.5, 150, 1800),
    D("K02.9", "Dental caries, unspecified", "stomatology", 3.0, 1.5, 0.8, 50, 900),
    D("K21.9", "Gastro-oesophageal reflux disease without oesophagitis", "gastroenterology",
      0.05, 1.0, 1.0, 100, 900),
    D("K29.7", "Gastritis, unspecified", "gastroenterology", 0.3, 2.5, 2.5, 100, 1800),
    D("K35.8", "Acute appendicitis, other and unspecified", "general_surgery",
      0.3, 0.3, 0.1, 5000, 18000),
    D("K80.2", "Calculus of gallbladder without cholecystitis", "general_surgery",
      0.0, 0.5, 0.8, 300, 22000),
    D("L20.9", "Atopic dermatitis, unspecified", "dermatology", 1.5, 0.5, 0.3, 80, 600),
    D("L30.9", "Dermatitis, unspecified", "dermatology", 0.8, 1.0, 0.8, 60, 450),
    D("M17.9", "Gonarthrosis, unspecified", "orthopedics", 0.0, 0.4, 2.5, 200, 65000),
    D("M47.8", "Other spondylosis", "orthopedics", 0.0, 1.0, 1.2, 100, 1800),
    D("M54.5", "Low back pain", "orthopedics", 0.05, 2.0, 2.5, 100, 1500),
    D("M81.9", "Osteoporosis, unspecified", "orthopedics", 0.0, 0.1, 1.2, 100, 1500, sex="F"),
    D("N20.0", "Calculus of kidney", "urology", 0.0, 0.6, 0.5, 200, 15000),
    D("N39.0", "Urinary tract infection, site not specified", "urology",
      0.2, 1.0, 1.0, 80, 900, sex="F"),
    D("N40", "Hyperplasia of prostate", "urology", 0.0, 0.3, 2.5, 150, 15000, sex="M"),
    D("O80.0", "Spontaneous vertex delivery", "obstetrics", 0.0, 0.4, 0.0, 3000, 12000,
      sex="F"),
    D("Q21.1", "Atrial septal defect", "cardiology", 0.1, 0.01, 0.0, 500, 35000),
    D("R50.9", "Fever, unspecified", "emergency", 2.0, 0.8, 0.6, 60, 450, winter=1.5),
    D("R51", "Headache", "neurology", 0.2, 0.5, 0.3, 60, 350),
    D("S06.0", "Concussion", "neurosurgery", 0.2, 0.2, 0.1, 500, 9000),
    D("S52.5", "Fracture of lower end of radius", "orthopedics", 0.3, 0.3, 0.5, 500, 15000,
      winter=1.3),
    D("S72.0", "Fracture of neck of femur", "orthopedics", 0.0, 0.02, 0.4, 20000, 80000,
      winter=1.3),
    D("S93.4", "Sprain and strain of ankle", "orthopedics", 0.4, 0.6, 0.2, 80, 700),
    D("U07.1", "COVID-19, virus identified", "respiratory", 0.3, 0.5, 0.7, 100, 6000,
      winter=1.5),
    D("Z00.0", "General medical examination", "health_checkup", 0.5, 1.5, 1.2, 100, 1500),
    D("Z34.9", "Supervision of normal pregnancy, unspecified", "obstetrics",
      0.0, 1.0, 0.0, 100, 900, sex="F"),
)

# Departments that children are seen in by paediatricians rather than adult specialists.
PAEDIATRIC = frozenset({
    "respiratory", "gastroenterology", "cardiology", "neurology", "infectious_diseases",
    "hematology", "endocrinology", "emergency", "psychiatry",
})
