"""The 17 offices of education and V10, so that a school's office always exists.

Names are those of docs/neis-api.md section 6 (V10's in the older form of client tables);
``registry.upsert_schools`` replaces them with whatever schoolInfo serves.
"""

from django.db import migrations

OFFICES = {
    "B10": "서울특별시교육청",
    "C10": "부산광역시교육청",
    "D10": "대구광역시교육청",
    "E10": "인천광역시교육청",
    "F10": "광주광역시교육청",
    "G10": "대전광역시교육청",
    "H10": "울산광역시교육청",
    "I10": "세종특별자치시교육청",
    "J10": "경기도교육청",
    "K10": "강원특별자치도교육청",
    "M10": "충청북도교육청",
    "N10": "충청남도교육청",
    "P10": "전북특별자치도교육청",
    "Q10": "전라남도교육청",
    "R10": "경상북도교육청",
    "S10": "경상남도교육청",
    "T10": "제주특별자치도교육청",
    "V10": "재외한국학교",
}


def add_offices(apps, schema_editor):
    Office = apps.get_model("collector", "Office")
    for code, name in OFFICES.items():
        Office.objects.get_or_create(code=code, defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [("collector", "0001_initial")]

    operations = [migrations.RunPython(add_offices, migrations.RunPython.noop)]
