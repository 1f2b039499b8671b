"""The token endpoint's body and result (POST /auth/token)."""

from rest_framework import serializers


class TokenIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=1024, style={"input_type": "password"})


class TokenOut(serializers.Serializer):
    token = serializers.CharField()
